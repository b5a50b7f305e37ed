import Foundation
import Testing

/// Issue #10: what the daemon keeps is bounded. Stopped servers can be removed with their
/// logs (`rm`); an engine's log is rotated while it is still starting; secrets passed as
/// arguments never show in what agentron prints.
@Suite(.serialized, .timeLimit(.minutes(4)))
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
        let profile = try CommandEngineTests.writeProfile(
            harness, "noisy",
            """
            name: noisy
            engine: command
            model: m
            port: 9
            command: [sh, -c, "head -c 12000000 /dev/zero | tr '\\\\0' x | fold -w 100; exec sleep 60"]
            startup_timeout: 2m
            """)
        let up = try await harness.run(["up", profile, "--detach"])
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

    /// A `logs --follow` client that never reads must not make the daemon buffer the
    /// engine's output for it without bound.
    @Test func aFollowerThatDoesNotReadIsNotBufferedForWithoutBound() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        // A follower that stalls a write this long is dropped (30 s by default).
        let daemon = try await harness.startDaemon(environment: ["AGENTRON_CONTROL_IDLE_TIMEOUT": "3s"])
        // About 10 MB of log a second, for as long as it runs.
        let profile = try CommandEngineTests.writeProfile(
            harness, "chatty",
            """
            name: chatty
            engine: command
            model: m
            port: 9
            command: [sh, -c, "while true; do head -c 1000000 /dev/zero | tr '\\\\0' a; echo; sleep 0.1; done"]
            """)
        let up = try await harness.run(["up", profile, "--detach"])
        #expect(up.code == 0, "\(up.stderr)")
        let before = try #require(Self.residentKiB(daemon.processIdentifier))
        let reader = try #require(RawClient.connect(harness.socketPath))
        defer { close(reader) }
        // Ask for the stream, then never read: the socket buffers fill, then the daemon's.
        let request = RawRequest.get("/v1/servers/chatty/logs?follow=true&tail=0")
        _ = request.withUnsafeBytes { send(reader, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        try await Task.sleep(for: .seconds(12))
        let after = try #require(Self.residentKiB(daemon.processIdentifier))
        let grown = (after - before) / 1024
        // Reading 1 MiB every 200 ms for 12 s is 60 MiB when every chunk is kept.
        #expect(grown < 35, "the daemon grew by \(grown) MiB for a client that does not read")
        // And it was dropped: what the socket holds can be read, then the end.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(reader, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var n = 1
        let drainUntil = Date().addingTimeInterval(20)
        while n > 0, Date() < drainUntil {
            n = buffer.withUnsafeMutableBytes { recv(reader, $0.baseAddress, $0.count, 0) }
        }
        let code = errno
        #expect(n == 0 || code == ECONNRESET, "the stalled follower is still connected (errno \(code))")
        #expect(try await harness.run(["down", "chatty"]).code == 0)
    }

    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    @Test func secretArgumentsNeverShowInLogsInspectOrFailures() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // The engine echoes its arguments and environment, as vLLM's "non-default args" does.
        let profile = try CommandEngineTests.writeProfile(
            harness, "leaky",
            """
            name: leaky
            engine: command
            model: m
            port: 9
            command: [sh, -c, "echo args $1 $2; echo token $HF_TOKEN; exit 3", sh, --api-key, sk-argument-secret-1]
            env:
              HF_TOKEN: hf_environment_secret_2
            """)
        let up = try await harness.run(["up", profile])
        #expect(up.code == 4)
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
