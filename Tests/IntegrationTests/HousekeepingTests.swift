import Foundation
import Testing

/// Issue #10: what the daemon keeps is bounded. Stopped servers can be removed with their
/// logs (`rm`); an engine's log is rotated while it is still starting; secrets passed as
/// arguments never show in what agentron prints.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HousekeepingTests {
    @Test func rmForgetsAStoppedServerAndRefusesARunningOne() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        #expect(try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "gone"]).code == 0)
        let log = harness.logDirectory.appendingPathComponent("gone.log")
        #expect(FileManager.default.fileExists(atPath: log.path))

        let refused = try await harness.run(["rm", "gone"])
        #expect(refused.code == 1)
        #expect(refused.stderr.contains("is ready; stop it first"), "\(refused.stderr)")

        #expect(try await harness.run(["down", "gone"]).code == 0)
        #expect(try await harness.servers(all: true).count == 1, "a stopped server is kept until removed")
        let rm = try await harness.run(["rm", "gone"])
        #expect(rm.code == 0, "\(rm.stderr)")
        #expect(try await harness.servers(all: true).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: log.path), "its log is removed too")
        let state = try String(contentsOf: harness.home.appendingPathComponent("state/servers.json"), encoding: .utf8)
        #expect(!state.contains("\"gone\""), "its record is gone from the state file")

        #expect(try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "forced"]).code == 0)
        let engines = harness.engineProcesses()
        #expect(!engines.isEmpty, "the engine's processes are found")
        let forced = try await harness.run(["rm", "--force", "forced"])
        #expect(forced.code == 0, "\(forced.stderr)")
        #expect(await Harness.waitGone(engines).isEmpty)
        #expect(try await harness.servers(all: true).isEmpty)
    }

    @Test func anEnginesLogIsRotatedWhileItStarts() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // 12 MB of output, then silence: it never answers, so it stays starting.
        let profile = harness.home.appendingPathComponent("noisy.yaml")
        try """
            name: noisy
            engine: command
            model: m
            port: 9
            command: [sh, -c, "head -c 12000000 /dev/zero | tr '\\\\0' x | fold -w 100; exec sleep 60"]
            startup_timeout: 2m
            """.write(to: profile, atomically: true, encoding: .utf8)
        let up = try await harness.run(["up", profile.path, "--detach"])
        #expect(up.code == 0, "\(up.stderr)")
        let rotated = harness.logDirectory.appendingPathComponent("noisy.log.1")
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: rotated.path), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(FileManager.default.fileExists(atPath: rotated.path), "the log was not rotated during startup")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "starting")
        let engines = harness.engineProcesses()
        #expect(!engines.isEmpty, "the engine's processes are found")
        #expect(try await harness.run(["down", "noisy"]).code == 0)
        #expect(await Harness.waitGone(engines).isEmpty)
    }

    @Test func secretArgumentsNeverShowInLogsInspectOrFailures() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let profile = harness.home.appendingPathComponent("leaky.yaml")
        // The engine echoes its arguments and environment, as vLLM's "non-default args" does.
        try """
            name: leaky
            engine: command
            model: m
            port: 9
            command: [sh, -c, "echo args $1 $2; echo token $HF_TOKEN; exit 3", sh, --api-key, sk-argument-secret-1]
            env:
              HF_TOKEN: hf_environment_secret_2
            """.write(to: profile, atomically: true, encoding: .utf8)
        let up = try await harness.run(["up", profile.path])
        #expect(up.code == 1)
        let inspect = try await harness.run(["inspect", "leaky", "--json"])
        let logs = try await harness.run(["logs", "leaky"])
        for (what, text) in [("up's failure tail", up.stderr), ("inspect", inspect.stdout), ("logs", logs.stdout)] {
            #expect(!text.contains("sk-argument-secret-1"), "\(what) shows the argument secret: \(text)")
            #expect(!text.contains("hf_environment_secret_2"), "\(what) shows the env secret: \(text)")
        }
        #expect(logs.stdout.contains("--api-key <redacted>"), "\(logs.stdout)")
        #expect(logs.stdout.contains("token <redacted>"), "the engine's own echo is blanked: \(logs.stdout)")
    }
}
