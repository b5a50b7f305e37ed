import Foundation
import Testing

/// Bad input gets one clear line and a non-zero exit; the daemon keeps running (issue #2).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BadInputTests {
    @Test func aFailingStartReportsItsReasonAndLogTail() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "nobody/no-such-model", "--engine", "vllm", "--env", "FAKE_EXIT_AT_START=bad-model",
        ])
        #expect(up.code == 4)
        #expect(up.stderr.contains("failed to start"))
        #expect(up.stderr.contains("during startup"))
        #expect(up.stderr.contains("is not a valid model identifier"))
        #expect(up.stderr.contains("last log lines"))
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "failed", "a failed server stays visible")
        #expect((server["reason"] as? String)?.contains("exited with status 1") == true)
        #expect(harness.daemon?.isRunning == true)
    }

    @Test func aTakenPortIsReportedWithItsHolder() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        listen(holder, 1)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--port", String(port)])
        #expect(up.code == 4)
        #expect(up.stderr.contains("port \(port) on 127.0.0.1 is already in use by pid \(getpid())"), "\(up.stderr)")
        #expect(harness.daemon?.isRunning == true)
    }

    @Test func aMissingEngineBinarySaysHowToInstallIt() async throws {
        let harness = try Harness(withFakeVLLM: false)
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run(["up", "org/m", "--engine", "vllm"])
        #expect(up.code == 4)
        #expect(up.stderr.contains("vllm: command not found on PATH"))
        #expect(up.stderr.contains("pip install vllm"))
        #expect(up.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }.count == 1, "one line: \(up.stderr)")
    }

    @Test func anInvalidProfileNamesFileLineAndFieldAndNeverStarts() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let file = harness.home.appendingPathComponent("bad.yaml")
        try "engine: vllm\nmodel: org/m\nstartup_timout: 5m\n".write(to: file, atomically: true, encoding: .utf8)
        let up = try await harness.run(["up", file.path])
        #expect(up.code != 0)
        #expect(up.stderr.contains("bad.yaml:3:1"), "\(up.stderr)")
        #expect(up.stderr.contains("did you mean \"startup_timeout\""))
        #expect(try await harness.servers(all: true).isEmpty, "nothing was started")

        let validate = try await harness.run(["profiles", "validate", file.path])
        #expect(validate.code == 1)
        #expect(validate.stderr.contains("bad.yaml:3:1"))
        #expect(harness.daemon?.isRunning == true)
    }

    @Test func unknownEngineAndBadPortAreUsageErrors() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let engine = try await harness.run(["up", "org/m", "--engine", "foo"])
        #expect(engine.code != 0)
        #expect(engine.stderr.contains("unknown engine \"foo\""))
        #expect(engine.stderr.contains("vllm, ollama, tgi, command"))
        let port = try await harness.run(["up", "org/m", "--engine", "vllm", "--port", "70000"])
        #expect(port.code != 0)
        #expect(port.stderr.contains("invalid port \"70000\""))
        let noEngine = try await harness.run(["up", "org/m"])
        #expect(noEngine.code != 0)
        #expect(noEngine.stderr.contains("--engine"))
    }

    @Test func downOfAnUnknownNameFails() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let down = try await harness.run(["down", "nope"])
        #expect(down.code == 2)
        #expect(down.stderr.contains("no server named \"nope\""))
    }

    @Test func withoutADaemonPsIsEmptyAndDownSaysSo() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        // A stale socket file with nobody behind it.
        try FileManager.default.createDirectory(
            at: harness.home.appendingPathComponent("run"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.socketPath, contents: nil)
        let ps = try await harness.run(["ps", "--json"])
        #expect(ps.code == 0)
        #expect(try harness.json(ps.stdout)["servers"] as? [Any] != nil)
        let down = try await harness.run(["down", "x"])
        #expect(down.code == 3)  // the daemon is unreachable (docs/cli.md)
        #expect(down.stderr.contains("agentrond is not running"))
    }

    @Test func aSecondDaemonOnTheSameStateDirectoryIsRefused() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let first = try await harness.startDaemon()
        let second = Process()
        second.executableURL = harness.binDirectory.appendingPathComponent("agentrond")
        second.environment = harness.environment
        let err = Pipe()
        second.standardError = err
        second.standardOutput = FileHandle.nullDevice
        try second.run()
        harness.track(second.processIdentifier)
        second.waitUntilExit()
        #expect(second.terminationStatus == 1)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.contains("another agentrond (pid \(first.processIdentifier)) already runs"))
        #expect(first.isRunning)
        #expect(harness.isListening(), "the first daemon's socket survived")
    }

    @Test func upStartsADaemonWhenNoneAnswers() async throws {
        let harness = try Harness()
        defer {
            // This daemon was started by the CLI, not the harness: stop it by its lock's pid.
            if let text = try? String(
                contentsOf: harness.home.appendingPathComponent("state/agentrond.lock"), encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                kill(pid, SIGTERM)
                let deadline = Date().addingTimeInterval(10)
                while Harness.isAlive(pid), Date() < deadline { usleep(10_000) }
                if Harness.isAlive(pid) { kill(pid, SIGKILL) }
            }
            harness.shutdown()
        }
        let up = try await harness.run([
            "up", "org/auto", "--engine", "vllm", "--env", "FAKE_PID_FILE=\(harness.pidFile("auto").path)",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        #expect(up.stderr.contains("starting agentrond"))
        let pids = try await harness.readPids("auto")
        #expect(try await harness.run(["down", "--all"]).code == 0)
        #expect(pids.filter(Harness.isAlive).isEmpty)
    }
}
