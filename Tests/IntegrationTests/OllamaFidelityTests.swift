import AgentronHTTP
import Foundation
import Testing

/// The ollama engine against behaviours of the real Ollama that the fake reproduces
/// (docs/engines.md, "What the fake reproduces"): no HOME under the system unit, an
/// offline registry, pull policies, embedding models, and `serve` refusing arguments.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct OllamaFidelityTests {
    /// A models directory with `model` already in it, as `ollama pull` leaves it: the fake
    /// reads manifests/<host>/<namespace>/<model>/<tag> at start.
    static func modelStore(_ harness: Harness, with models: [(model: String, tag: String)]) throws -> URL {
        let store = harness.home.appendingPathComponent("models")
        for (model, tag) in models {
            let directory = store.appendingPathComponent("manifests/registry.ollama.ai/library/\(model)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(#"{"schemaVersion":2,"layers":[]}"#.utf8).write(to: directory.appendingPathComponent(tag))
        }
        return store
    }

    static func get(_ url: String) async throws -> HTTPResponse {
        try await HTTPClient.shared.execute(HTTPRequest(url: url, timeout: .seconds(5)))
    }

    /// The system unit sets no HOME; real `ollama serve` exits 1 without one. The child
    /// gets the daemon user's home, the server becomes ready, and `down` leaves nothing.
    @Test func aDaemonWithoutHomeRunsOllamaToReadyAndDownLeavesNothing() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon(unsetting: ["HOME"])

        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--name", "nohome",
            "--env", "FAKE_PULL_SECONDS=0", "--env", "FAKE_PID_FILE=\(harness.pidFile("nohome").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        #expect(!up.stderr.contains("$HOME is not defined"))
        let pids = try await harness.readPids("nohome")
        #expect(pids.count == 2, "ollama serve and its runner: \(pids)")
        #expect(try await harness.servers().first?["state"] as? String == "ready")

        // The system daemon's models go somewhere stable: the state directory (never a HOME
        // that moves, never the system Ollama's own store).
        let logs = try await harness.run(["logs", "nohome", "--tail", "100"])
        if getuid() == 0 {
            #expect(logs.stdout.contains("OLLAMA_MODELS:\(harness.home.path)/state/ollama/models"), "\(logs.stdout)")
        }

        let down = try await harness.run(["down", "nohome"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        #expect(await Harness.waitGone(pids).isEmpty, "left running after down")
    }

    /// pull: missing (the default) asks /api/show first: a model on disk starts offline,
    /// where a pull would fail at the manifest.
    @Test func aModelAlreadyOnDiskStartsWithTheRegistryUnreachable() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let store = try Self.modelStore(harness, with: [("llama3.2", "1b")])
        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--name", "offline", "--env", "OLLAMA_MODELS=\(store.path)",
            "--env", "FAKE_REGISTRY_UNREACHABLE=1", "--env", "FAKE_PID_FILE=\(harness.pidFile("offline").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let logs = try await harness.run(["logs", "offline", "--tail", "100"])
        #expect(!logs.stdout.contains("\"/api/pull\""), "nothing was pulled")
        #expect(logs.stdout.contains("POST     \"/api/show\""))
        let pids = try await harness.readPids("offline")
        #expect(try await harness.run(["down", "offline"]).code == 0)
        #expect(await Harness.waitGone(pids).isEmpty)
    }

    /// pull: always is today's behaviour, and offline it fails with Ollama's own error,
    /// even for a model already on disk.
    @Test func pullAlwaysWithTheRegistryUnreachableFailsWithOllamasError() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let store = try Self.modelStore(harness, with: [("llama3.2", "1b")])
        let up = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--name", "always", "--pull-policy", "always",
            "--env", "OLLAMA_MODELS=\(store.path)", "--env", "FAKE_REGISTRY_UNREACHABLE=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("always").path)",
        ])
        #expect(up.code != 0)
        let expected =
            #"ollama could not pull "llama3.2:1b": pull model manifest: Get "https://registry.ollama.ai/v2/library/llama3.2/manifests/1b": dial tcp: lookup registry.ollama.ai: no such host"#
        #expect(up.stderr.contains(expected), "\(up.stderr)")
        let pids = try await harness.readPids("always")
        #expect(await Harness.waitGone(pids).isEmpty, "the engine was stopped")
    }

    /// pull: never with a model that is not there fails with one line that says what to do,
    /// and never asks the registry.
    @Test func pullNeverWithAMissingModelFailsWithAClearLine() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "qwen2.5:0.5b", "--engine", "ollama", "--name", "never", "--pull-policy", "never",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("never").path)",
        ])
        #expect(up.code != 0)
        #expect(
            up.stderr.contains(
                #"model "qwen2.5:0.5b" is not on this machine and the profile says pull: never; run `ollama pull qwen2.5:0.5b`, or set pull: missing"#
            ),
            "\(up.stderr)")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "failed")
        let logs = try await harness.run(["logs", "never", "--tail", "100"])
        #expect(!logs.stdout.contains("\"/api/pull\""), "pull: never never pulls")
        let pids = try await harness.readPids("never")
        #expect(await Harness.waitGone(pids).isEmpty, "the engine was stopped")
    }

    /// An embedding model has no generation: Ollama answers a load through /api/generate
    /// with 400 "does not support generate". It loads through /api/embed and is ready.
    @Test func anEmbeddingModelBecomesReady() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        for (model, name) in [("nomic-embed-text", "nomic"), ("bge-m3", "bge")] {
            let up = try await harness.run([
                "up", model, "--engine", "ollama", "--name", name, "--env", "FAKE_PULL_SECONDS=0",
                "--env", "FAKE_EMBEDDING_MODELS=bge-m3", "--env", "FAKE_PID_FILE=\(harness.pidFile(name).path)",
            ])
            #expect(up.code == 0, "up \(model) failed: \(up.stderr)")
            let server = try #require(try await harness.servers().first { $0["name"] as? String == name })
            #expect(server["state"] as? String == "ready")
            let endpoint = try #require(server["endpoint"] as? String)
            let ps = try await Self.get(endpoint + "/api/ps")
            #expect(ps.bodyText.contains(#""name":"\#(model):latest""#), "\(ps.bodyText)")
            let pids = try await harness.readPids(name)
            #expect(pids.count == 2, "a runner holds the model: \(pids)")
            #expect(try await harness.run(["down", name]).code == 0)
            #expect(await Harness.waitGone(pids).isEmpty)
        }
    }

    /// The fake's `serve` refuses arguments like cobra's ExactArgs(0), and HOME like
    /// os.UserHomeDir: what agentron's validation and launch guard against.
    @Test func theFakesServeFailsLikeOllamaWithArgumentsOrWithoutHome() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        func serve(_ arguments: [String], unsetHome: Bool) throws -> (code: Int32, stderr: String) {
            let process = Process()
            process.executableURL = harness.fakeBin.appendingPathComponent("ollama")
            process.arguments = arguments
            var environment = harness.environment
            environment["OLLAMA_HOST"] = "127.0.0.1:1"
            if unsetHome { environment.removeValue(forKey: "HOME") }
            process.environment = environment
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            harness.track(process.processIdentifier)
            process.waitUntilExit()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return (process.terminationStatus, text)
        }
        let extra = try serve(["serve", "x"], unsetHome: false)
        #expect(extra.code == 1 && extra.stderr.contains("Error: accepts 0 arg(s), received 1"), "\(extra)")
        let noHome = try serve(["serve"], unsetHome: true)
        #expect(noHome.code == 1 && noHome.stderr.contains("Error: $HOME is not defined"), "\(noHome)")
    }
}
