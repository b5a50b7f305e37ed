import AgentronHTTP
import Foundation
import Testing

/// The ollama engine against the real daemon and the FakeEngine as `ollama` (issue #5):
/// `ollama serve` on a private port, the model pulled with visible progress, loaded with
/// keep-alive forever, ready once /api/ps lists it; `down` leaves nothing behind.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct OllamaEngineTests {
    /// A harness whose PATH has the FakeEngine as `ollama` (and as `vllm`).
    static func makeHarness() throws -> Harness {
        let harness = try Harness()
        try FileManager.default.createSymbolicLink(
            at: harness.fakeBin.appendingPathComponent("ollama"),
            withDestinationURL: harness.binDirectory.appendingPathComponent("fake-engine"))
        return harness
    }

    static func post(_ url: String, _ body: String) async throws -> HTTPResponse {
        try await HTTPClient.shared.execute(
            HTTPRequest(
                method: "POST", url: url, headers: [("Content-Type", "application/json")], body: Array(body.utf8),
                timeout: .seconds(10)))
    }

    @Test func upPullsLoadsAndServesTheModelAndDownLeavesNothing() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()

        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama",
            "--env", "FAKE_PULL_SECONDS=0.3", "--env", "FAKE_PID_FILE=\(harness.pidFile("ollama").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        #expect(up.stdout.contains("llama3.2-1b is ready (ollama"))
        #expect(up.stdout.contains("model     llama3.2:1b"))
        let pids = try await harness.readPids("ollama")
        #expect(pids.count == 2, "ollama serve and its runner: \(pids)")

        let server = try #require(try await harness.servers().first)
        #expect(server["name"] as? String == "llama3.2-1b")
        #expect(server["engine"] as? String == "ollama")
        #expect(server["model"] as? String == "llama3.2:1b")
        #expect(server["servedModel"] as? String == "llama3.2:1b")
        #expect(server["state"] as? String == "ready")
        #expect(server["progress"] == nil, "progress is shown only while starting")
        let endpoint = try #require(server["endpoint"] as? String)

        // The OpenAI-compatible endpoint serves the model under the printed name.
        let chat = try await Self.post(
            endpoint + "/v1/chat/completions",
            #"{"model":"llama3.2:1b","messages":[{"role":"user","content":"hello there"}]}"#)
        #expect(chat.status == 200, "\(chat.bodyText)")
        #expect(chat.bodyText.contains("chat.completion"))
        #expect(chat.bodyText.contains("hello there"))

        // Loaded with keep-alive forever (Ollama's "never" is ~292 years ahead).
        let ps = try await HTTPClient.shared.execute(HTTPRequest(url: endpoint + "/api/ps", timeout: .seconds(5)))
        let loaded = try #require((try harness.json(ps.bodyText)["models"] as? [[String: Any]])?.first)
        #expect(loaded["name"] as? String == "llama3.2:1b")
        let expires = try #require(loaded["expires_at"] as? String)
        #expect((Int(expires.prefix(4)) ?? 0) > 2200, "keep_alive -1 means forever: \(expires)")

        let logs = try await harness.run(["logs", "llama3.2-1b", "--tail", "200"])
        #expect(logs.stdout.contains("ollama serve"))
        #expect(logs.stdout.contains("Listening on 127.0.0.1:"))
        #expect(logs.stdout.contains("POST     \"/api/pull\""))

        let down = try await harness.run(["down", "llama3.2-1b"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        let alive = pids.filter(Harness.isAlive)
        #expect(alive.isEmpty, "left running after down: \(alive)")
        #expect(try await harness.servers().isEmpty)
    }

    @Test func pullProgressIsVisibleWhileStarting() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let args = [
            "up", "qwen2.5:7b", "--engine", "ollama", "--name", "slowpull",
            "--env", "FAKE_PULL_SECONDS=3", "--env", "FAKE_PID_FILE=\(harness.pidFile("slowpull").path)",
        ]
        let accepted = try await harness.run(args + ["--detach"])
        #expect(accepted.code == 0, "\(accepted.stderr)")

        var seen: [String: Any]?
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, seen == nil {
            if let progress = try await harness.servers().first?["progress"] as? [String: Any],
                (progress["phase"] as? String)?.hasPrefix("pulling ") == true, let total = progress["total"] as? Int,
                let completed = progress["completed"] as? Int, total > 0, completed < total
            {
                seen = progress
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let progress = try #require(seen, "no pull progress appeared in `ps --json`")
        #expect((progress["total"] as? Int) == 4_683_087_332, "the model layer's size: \(progress)")
        let phase = progress["phase"] as? String ?? ""
        #expect(phase.count == "pulling ".count + 12, "Ollama's `pulling <12 hex digits>`: \(phase)")

        // A second `up` with the same spec waits for the same start to finish.
        let up = try await harness.run(args)
        #expect(up.code == 0, "\(up.stderr)")
        #expect(up.stdout.contains("slowpull is ready"))
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "ready")
        #expect(server["progress"] == nil)
        let pids = try await harness.readPids("slowpull")
        #expect(try await harness.run(["down", "slowpull"]).code == 0)
        #expect(pids.filter(Harness.isAlive).isEmpty)
    }

    @Test func anUnknownModelFailsWithOllamasOwnMessageAndStopsTheEngine() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "mystery:7b", "--engine", "ollama", "--env", "FAKE_PULL_UNKNOWN=mystery:7b", "--env",
            "FAKE_PULL_SPLIT=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("mystery").path)",
        ])
        #expect(up.code != 0)
        #expect(
            up.stderr.contains(#"ollama could not pull "mystery:7b": pull model manifest: file does not exist"#),
            "\(up.stderr)")
        let pids = try await harness.readPids("mystery")
        #expect(await Harness.waitGone(pids).isEmpty, "the engine was stopped")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "failed")
        #expect((server["reason"] as? String)?.contains("file does not exist") == true)
        #expect(harness.daemon?.isRunning == true)
    }

    @Test func hostQualifiedGGUFNamesPassThroughUnchangedAndSplitLinesAreReassembled() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let model = "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        // FAKE_PULL_SPLIT: every NDJSON line arrives in two reads, cut mid-JSON.
        let up = try await harness.run([
            "up", model, "--engine", "ollama", "--name", "gguf", "--env", "FAKE_PULL_SECONDS=0", "--env",
            "FAKE_PULL_SPLIT=1",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        #expect(up.stdout.contains("model     \(model)"))
        let server = try #require(try await harness.servers().first)
        #expect(server["model"] as? String == model)
        let endpoint = try #require(server["endpoint"] as? String)
        let models = try await HTTPClient.shared.execute(
            HTTPRequest(url: endpoint + "/v1/models", timeout: .seconds(5)))
        #expect(
            models.bodyText.contains(#""id":"hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M""#), "\(models.bodyText)"
        )
        #expect(try await harness.run(["down", "gguf"]).code == 0)
    }

    @Test func aProfileKeepAliveReachesOllama() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--name", "short", "--env", "OLLAMA_KEEP_ALIVE=1h",
            "--env", "FAKE_PULL_SECONDS=0",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let endpoint = try #require(try await harness.servers().first?["endpoint"] as? String)
        let ps = try await HTTPClient.shared.execute(HTTPRequest(url: endpoint + "/api/ps", timeout: .seconds(5)))
        let loaded = try #require((try harness.json(ps.bodyText)["models"] as? [[String: Any]])?.first)
        let expires = try #require(loaded["expires_at"] as? String)
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect((Int(expires.prefix(4)) ?? 0) <= year + 1, "an hour from now, not forever: \(expires)")
        let logs = try await harness.run(["logs", "short", "--tail", "50"])
        #expect(logs.stdout.contains("OLLAMA_KEEP_ALIVE:1h0m0s"), "the server got the profile's keep-alive")
        #expect(try await harness.run(["down", "short"]).code == 0)
    }

    /// Ollama runners outlive a killed server and keep the GPU. When `ollama
    /// serve` dies by SIGKILL, its orphaned runner goes too, and the server comes back.
    @Test func aKilledServersOrphanedRunnerIsCleanedUpAndTheServerRestarts() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--name", "crashy", "--env", "FAKE_PULL_SECONDS=0",
            "--env", "FAKE_CRASH_AFTER=1.5", "--env", "FAKE_CRASH_SIGNAL=9",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("crashy").path)",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let pids = try await harness.readPids("crashy")
        #expect(pids.count == 2, "server and runner: \(pids)")
        // The server dies 1.5 s after it listened; the daemon must take the runner with it.
        #expect(await Harness.waitGone(pids, within: 15).isEmpty, "the orphaned runner survived its server")
        var restarted = false
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !restarted {
            if let server = try await harness.servers().first, (server["restarts"] as? Int ?? 0) >= 1 {
                restarted = true
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(restarted, "the crash was followed by a restart")
        #expect(try await harness.run(["down", "crashy"]).code == 0)
        if let last = try? await harness.readPids("crashy") {
            #expect(await Harness.waitGone(last).isEmpty)
        }
    }

    @Test func anOllamaAlreadyOnThePortIsReported() async throws {
        let harness = try Self.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // The "system service": an ollama serve that agentron did not start.
        let port = try #require(Harness.freePort())
        let system = Process()
        system.executableURL = harness.fakeBin.appendingPathComponent("ollama")
        system.arguments = ["serve"]
        system.environment = harness.environment.merging(["OLLAMA_HOST": "127.0.0.1:\(port)"]) { $1 }
        system.standardOutput = FileHandle.nullDevice
        system.standardError = FileHandle.nullDevice
        try system.run()
        harness.track(system.processIdentifier)
        defer {
            kill(system.processIdentifier, SIGTERM)
            system.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if (try? await HTTPClient.shared.execute(
                HTTPRequest(url: "http://127.0.0.1:\(port)/", timeout: .seconds(1))))?.status == 200
            {
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }

        let up = try await harness.run(["up", "llama3.2:1b", "--engine", "ollama", "--port", String(port)])
        #expect(up.code != 0)
        #expect(up.stderr.contains("port \(port) on 127.0.0.1 is already in use"), "\(up.stderr)")
        #expect(system.isRunning, "the other Ollama is left alone")
    }

}
