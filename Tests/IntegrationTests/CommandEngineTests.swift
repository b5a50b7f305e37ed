import AgentronHTTP
import Foundation
import Testing

/// The generic `command` engine (issue #5): any argv with {host}, {port}, {model} and
/// {name} filled in, ready when the profile's health path answers the expected status.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CommandEngineTests {
    /// Writes a profile file in the harness home and returns its path.
    static func writeProfile(_ harness: Harness, _ name: String, _ yaml: String) throws -> String {
        let file = harness.home.appendingPathComponent("\(name).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test func aCommandProfileComesUpOnItsHealthPathAndDownLeavesNothing() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let vllm = harness.fakeBin.appendingPathComponent("vllm").path
        let profile = try Self.writeProfile(
            harness, "cmd",
            """
            name: cmd-fake
            engine: command
            model: org/cmd-model
            port: auto
            command: [\(vllm), serve, "{model}", --host, "{host}", "--port={port}", --served-model-name, "{model}", "{name}"]
            health_path: /health
            health_status: 200
            env:
              FAKE_LOAD_SECONDS: "0.3"
              FAKE_PID_FILE: \(harness.pidFile("cmd").path)
            """)
        let up = try await harness.run(["up", profile])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        #expect(up.stdout.contains("cmd-fake is ready (command"))
        #expect(up.stdout.contains("model     org/cmd-model"))
        let pids = try await harness.readPids("cmd")
        #expect(pids.count == 2, "the engine and its EngineCore: \(pids)")

        let server = try #require(try await harness.servers().first)
        #expect(server["engine"] as? String == "command")
        #expect(server["state"] as? String == "ready")
        let endpoint = try #require(server["endpoint"] as? String)
        let port = try #require(server["port"] as? Int)

        // Every placeholder was filled in: the model, the host, the port inside --port=, the name.
        let logs = try await harness.run(["logs", "cmd-fake", "--tail", "200"])
        #expect(
            logs.stdout.contains(
                "agentron: starting \(vllm) serve org/cmd-model --host 127.0.0.1 --port=\(port) --served-model-name org/cmd-model cmd-fake"
            ), "\(logs.stdout)")
        let models = try await HTTPClient.shared.execute(
            HTTPRequest(url: endpoint + "/v1/models", timeout: .seconds(5)))
        #expect(models.bodyText.contains(#""id":"cmd-fake""#))
        #expect(models.bodyText.contains(#""id":"org/cmd-model""#))

        let inspect = try harness.json(try await harness.run(["inspect", "cmd-fake", "--json"]).stdout)
        let probes = try #require(inspect["probes"] as? [[String: Any]])
        #expect(
            probes.contains { $0["passed"] as? Bool == true && $0["detail"] as? String == "/health 200" }, "\(probes)")

        let down = try await harness.run(["down", "cmd-fake"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        #expect(pids.filter(Harness.isAlive).isEmpty, "left running after down")
    }

    @Test func aHealthStatusThatNeverComesFailsTheStartWithTheProbeDetail() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let vllm = harness.fakeBin.appendingPathComponent("vllm").path
        let profile = try Self.writeProfile(
            harness, "mismatch",
            """
            name: mismatch
            engine: command
            model: org/m
            command: [\(vllm), serve, "{model}", --port, "{port}"]
            health_path: /health
            health_status: 204
            startup_timeout: 2s
            restart:
              policy: never
            env:
              FAKE_LOAD_SECONDS: "0"
              FAKE_PID_FILE: \(harness.pidFile("mismatch").path)
            """)
        let started = Date()
        let up = try await harness.run(["up", profile])
        #expect(up.code != 0)
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(up.stderr.contains("/health: status 200, expected 204"), "\(up.stderr)")
        let pids = try await harness.readPids("mismatch")
        #expect(await Harness.waitGone(pids).isEmpty, "the engine was stopped")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String != "ready")
    }

    @Test func aCommandServerWithoutACommandSaysWhatIsMissing() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run(["up", "tiny-model", "--engine", "command", "--name", "nocmd"])
        #expect(up.code != 0)
        #expect(up.stderr.contains("engine command needs the server's argv"), "\(up.stderr)")
        #expect(harness.daemon?.isRunning == true)
    }

    /// llama.cpp's llama-server answers /health with 503 "Loading model" until the model is
    /// in memory: a stand-in in Python does the same, and readiness waits it out.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func a503WhileLoadingMeansNotYet() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let script = harness.home.appendingPathComponent("llama_server_standin.py")
        try """
        import http.server, json, sys, time
        started = time.monotonic()
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if time.monotonic() - started < 1.0:
                    status, body = 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
                elif self.path == "/health":
                    status, body = 200, {"status": "ok"}
                else:
                    status, body = 200, {"object": "list", "data": [{"id": sys.argv[3], "object": "model", "owned_by": "llamacpp"}]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
        """.write(to: script, atomically: true, encoding: .utf8)
        let profile = try Self.writeProfile(
            harness, "standin",
            """
            name: standin
            engine: command
            model: /models/tiny.gguf
            command: [/usr/bin/python3, \(script.path), "{host}", "{port}", "{model}"]
            startup_timeout: 30s
            stop_timeout: 5s
            """)
        let up = try await harness.run(["up", profile])
        #expect(up.code == 0, "\(up.stderr)")
        let inspect = try harness.json(try await harness.run(["inspect", "standin", "--json"]).stdout)
        let probes = try #require(inspect["probes"] as? [[String: Any]])
        #expect(
            probes.contains {
                ($0["detail"] as? String)?.contains("status 503, expected 200") == true
                    && ($0["detail"] as? String)?.contains("Loading model") == true
            }, "\(probes)")
        #expect(probes.last?["detail"] as? String == "/health 200")
        #expect(try await harness.run(["down", "standin"]).code == 0)
    }
}
