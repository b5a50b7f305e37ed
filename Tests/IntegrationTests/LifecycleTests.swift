import AgentronHTTP
import Foundation
import Testing

/// up → ready → ps → logs → inspect → down against the real daemon and the FakeEngine
/// as `vllm`, and afterwards no process of the engine's tree exists (issue #2).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LifecycleTests {
    @Test func upPsLogsDownLeavesNothingRunning() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()

        let up = try await harness.run([
            "up", "meta-llama/Llama-3.2-1B-Instruct", "--engine", "vllm",
            "--env", "FAKE_LOAD_SECONDS=0.5", "--env", "FAKE_ESCAPE_HELPER=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("llama").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        #expect(up.stdout.contains("llama-3.2-1b-instruct is ready"))
        #expect(up.stdout.contains("model     llama-3.2-1b-instruct"))
        let pids = try await harness.readPids("llama")
        #expect(pids.count == 3, "main, EngineCore and the escaped helper: \(pids)")

        let servers = try await harness.servers()
        let server = try #require(servers.first)
        #expect(server["name"] as? String == "llama-3.2-1b-instruct")
        #expect(server["state"] as? String == "ready")
        #expect(server["engine"] as? String == "vllm")
        #expect((server["pid"] as? Int).map(Int32.init) == pids.first)
        let endpoint = try #require(server["endpoint"] as? String)

        // The endpoint really serves the model under the printed name.
        let body = #"{"model":"llama-3.2-1b-instruct","messages":[{"role":"user","content":"hello there"}]}"#
        let chat = try await HTTPClient.shared.execute(
            HTTPRequest(
                method: "POST", url: endpoint + "/v1/chat/completions",
                headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: .seconds(10)))
        #expect(chat.status == 200)
        #expect(chat.bodyText.contains("chat.completion"))

        let table = try await harness.run(["ps"])
        #expect(table.stdout.contains("NAME"))
        #expect(table.stdout.contains("llama-3.2-1b-instruct"))
        #expect(table.stdout.contains("ready"))

        let logs = try await harness.run(["logs", "llama-3.2-1b-instruct", "--tail", "200"])
        #expect(logs.code == 0)
        #expect(logs.stdout.contains("Application startup complete"))
        #expect(logs.stdout.contains("vllm serve meta-llama/Llama-3.2-1B-Instruct"))

        let inspect = try await harness.run(["inspect", "llama-3.2-1b-instruct", "--json"])
        let detail = try harness.json(inspect.stdout)
        #expect((detail["history"] as? [Any])?.isEmpty == false)
        #expect((detail["probes"] as? [Any])?.isEmpty == false)

        let down = try await harness.run(["down", "llama-3.2-1b-instruct"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        // `down` returns only when the tree is gone: check at once, no waiting.
        let alive = pids.filter(Harness.isAlive)
        #expect(alive.isEmpty, "left running after down: \(alive)")
        #expect(try await harness.servers().isEmpty)
        #expect(try await harness.servers(all: true).first?["state"] as? String == "stopped")
    }

    @Test func upOfARunningServerWithTheSameSpecReturnsAtOnceAndADifferentSpecIsRefused() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let args = [
            "up", "org/model-a", "--engine", "vllm", "--name", "same", "--env",
            "FAKE_PID_FILE=\(harness.pidFile("same").path)",
        ]
        #expect(try await harness.run(args).code == 0)
        let pids = try await harness.readPids("same")

        let again = try await harness.run(args)
        #expect(again.code == 0)
        #expect(again.stdout.contains("same is ready"))
        #expect(try await harness.readPids("same") == pids, "the engine was not restarted")

        let different = try await harness.run(["up", "org/model-b", "--engine", "vllm", "--name", "same"])
        #expect(different.code != 0)
        #expect(different.stderr.contains("already ready with a different spec"))
        #expect(different.stderr.contains("model org/model-a → org/model-b"))
        #expect(try await harness.run(["down", "same"]).code == 0)
        #expect(pids.filter(Harness.isAlive).isEmpty)
    }

    @Test func downGivesUpOnSIGTERMAfterTheGraceAndKillsTheTree() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "org/stubborn", "--engine", "vllm", "--stop-timeout", "1s",
            "--env", "FAKE_IGNORE_SIGTERM=1", "--env", "FAKE_ESCAPE_HELPER=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("stubborn").path)",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let pids = try await harness.readPids("stubborn")
        let started = ContinuousClock.now
        let down = try await harness.run(["down", "stubborn"])
        let took = ContinuousClock.now - started
        #expect(down.code == 0)
        #expect(took >= .milliseconds(900), "the grace period was honoured")
        #expect(pids.filter(Harness.isAlive).isEmpty, "SIGKILL reached the whole tree")
    }

    @Test func downTimeoutFlagOverridesTheProfileGrace() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        #expect(
            try await harness.run([
                "up", "org/stubborn2", "--engine", "vllm", "--env", "FAKE_IGNORE_SIGTERM=1",
                "--env", "FAKE_PID_FILE=\(harness.pidFile("s2").path)",
            ]).code == 0)
        let pids = try await harness.readPids("s2")
        let started = ContinuousClock.now
        #expect(try await harness.run(["down", "stubborn2", "--timeout", "300ms"]).code == 0)
        #expect(ContinuousClock.now - started < .seconds(30), "did not wait the profile's 90 s")
        #expect(pids.filter(Harness.isAlive).isEmpty)
    }

    @Test func daemonSIGTERMStopsEveryEngine() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon()
        var all: [Int32] = []
        for index in 0..<3 {
            let up = try await harness.run([
                "up", "org/m\(index)", "--engine", "vllm", "--env",
                "FAKE_PID_FILE=\(harness.pidFile("m\(index)").path)",
            ])
            #expect(up.code == 0, "\(up.stderr)")
            all += try await harness.readPids("m\(index)")
        }
        kill(daemon.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while daemon.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!daemon.isRunning)
        #expect(daemon.terminationStatus == 0)
        #expect(all.filter(Harness.isAlive).isEmpty, "engines outlived the daemon's stop")
    }

    @Test func logsFollowStreamsNewOutput() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        #expect(try await harness.run(["up", "org/chatty", "--engine", "vllm"]).code == 0)
        let servers = try await harness.servers()
        let endpoint = try #require(servers.first?["endpoint"] as? String)

        let follower = Process()
        follower.executableURL = harness.binDirectory.appendingPathComponent("agentron")
        follower.arguments = ["logs", "chatty", "-f", "--tail", "1"]
        follower.environment = harness.environment
        let pipe = Pipe()
        follower.standardOutput = pipe
        try follower.run()
        harness.track(follower.processIdentifier)
        defer {
            kill(follower.processIdentifier, SIGKILL)
            follower.waitUntilExit()
        }
        try await Task.sleep(for: .milliseconds(300))
        // The FakeEngine logs each request like uvicorn's access log.
        _ = try await HTTPClient.shared.execute(HTTPRequest(url: endpoint + "/version"))
        let deadline = Date().addingTimeInterval(10)
        var seen = ""
        let reader = pipe.fileHandleForReading
        while Date() < deadline, !seen.contains("/version") {
            let data = reader.availableData
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        #expect(seen.contains("GET /version"), "followed output: \(seen)")
    }
}
