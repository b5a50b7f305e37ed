import Foundation
import Testing

/// A socket nobody else can steer: the runtime directory must be ours, the daemon serves only
/// root, its own user and its socket's group, and the CLI talks only to a daemon run by root
/// or itself (docs/systemd.md, "Who may use the control socket").
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SocketAccessTests {
    static let nobody: UInt32 = 65534
    static var isRoot: Bool { geteuid() == 0 }
    static var hasSetpriv: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") }

    enum Tampering: String, CaseIterable, CustomTestStringConvertible {
        case worldWritable
        case ownedByNobody
        case symlink
        var testDescription: String { rawValue }
    }

    /// The `run` directory of AGENTRON_HOME prepared by someone else: the daemon refuses to
    /// start, the CLI refuses to connect or to start a daemon, and no socket appears there.
    @Test(arguments: Tampering.allCases)
    func aRunDirectoryAnotherUserControlsIsRefusedByDaemonAndCLI(_ tampering: Tampering) async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let run = harness.home.appendingPathComponent("run").path
        switch tampering {
        case .worldWritable:
            #expect(mkdir(run, 0o700) == 0)
            #expect(chmod(run, 0o777) == 0)
        case .ownedByNobody:
            guard Self.isRoot else { return }  // chown to another user needs root (CI runs as root)
            #expect(mkdir(run, 0o700) == 0)
            #expect(chown(run, Self.nobody, Self.nobody) == 0)
        case .symlink:
            let elsewhere = harness.home.appendingPathComponent("elsewhere").path
            #expect(mkdir(elsewhere, 0o700) == 0)
            #expect(symlink(elsewhere, run) == 0)
        }

        let daemon = try await harness.runDaemonToExit()
        #expect(daemon.code == 1, "agentrond must refuse to start: \(daemon.stderr)")
        #expect(daemon.stderr.contains("agentrond: refusing the runtime directory \(run)"), "\(daemon.stderr)")
        #expect(daemon.stderr.contains("XDG_RUNTIME_DIR or AGENTRON_HOME"))
        #expect(daemon.stderr.split(separator: "\n").count == 1, "one line: \(daemon.stderr)")

        let ps = try await harness.run(["ps"])
        #expect(ps.code != 0, "ps must not report an empty list through a directory it cannot trust")
        #expect(ps.stderr.contains("refusing the runtime directory \(run)"), "\(ps.stderr)")

        // `up` would start a daemon; it must not get that far either.
        let up = try await harness.run(["up", "org/m", "--engine", "vllm"])
        #expect(up.code != 0)
        #expect(up.stderr.contains("refusing the runtime directory \(run)"), "\(up.stderr)")
        #expect(!up.stderr.contains("starting agentrond"), "no daemon is started: \(up.stderr)")

        var info = stat()
        #expect(lstat(harness.socketPath, &info) != 0, "no socket was created in \(run)")
        let resolved = harness.home.appendingPathComponent("elsewhere/agentron.sock").path
        #expect(lstat(resolved, &info) != 0, "nor behind a symlink")
    }

    /// A root daemon whose socket anybody may open (mode 0777) still serves only root, itself
    /// and the socket's group: another user gets 403 forbidden, and the daemon logs the uid.
    @Test(.enabled(if: isRoot && hasSetpriv, "needs root and setpriv to connect as nobody"))
    func aRootDaemonRefusesAnotherUser() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // Let the kernel pass nobody through to connect(2); only SO_PEERCRED stands in the way.
        #expect(chmod(harness.home.path, 0o755) == 0)
        #expect(chmod(harness.home.appendingPathComponent("run").path, 0o755) == 0)
        #expect(chmod(harness.socketPath, 0o777) == 0)

        let reply = try harness.runAsNobody([
            "/usr/bin/curl", "-sS", "-w", "\n%{http_code}", "--unix-socket", harness.socketPath,
            "http://localhost/v1/daemon",
        ])
        let lines = reply.stdout.split(separator: "\n")
        #expect(lines.last == "403", "nobody is refused: \(reply.stdout) \(reply.stderr)")
        let body = try harness.json(String(lines.first ?? ""))
        let error = try #require(body["error"] as? [String: Any])
        #expect(error["code"] as? String == "forbidden")
        #expect((error["message"] as? String)?.contains("uid \(Self.nobody) may not use this agentrond") == true)
        #expect(harness.daemonLog.contains("refused a control connection: uid \(Self.nobody)"), "\(harness.daemonLog)")

        // Root (the daemon's own user) is still served.
        let ps = try await harness.run(["ps"])
        #expect(ps.code == 0, "\(ps.stderr)")
        #expect(harness.daemon?.isRunning == true)
    }

    /// Someone else's listener on our socket path (here: nobody's, in a directory we own)
    /// gets nothing from the CLI: not `ps`, not a profile with its secrets.
    @Test(.enabled(if: isRoot && hasSetpriv, "needs root and setpriv to listen as nobody"))
    func theCLIRefusesAListenerRunByAnotherUser() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let run = harness.home.appendingPathComponent("run").path
        // Open just long enough for nobody to bind, then ours alone again: the directory
        // check passes, so only the peer check can stop the CLI.
        #expect(chmod(harness.home.path, 0o755) == 0)
        #expect(mkdir(run, 0o700) == 0)
        #expect(chmod(run, 0o777) == 0)
        let received = harness.home.appendingPathComponent("fake-listener.received").path
        let fake = try harness.startAsNobody(
            ["/usr/bin/python3", "-c", Self.fakeDaemon, harness.socketPath], stdoutPath: received)
        defer { fake.stop() }
        let deadline = Date().addingTimeInterval(10)
        while !harness.isListening(), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(harness.isListening(), "the fake listener is up")
        #expect(chmod(run, 0o700) == 0)

        let ps = try await harness.run(["ps"])
        #expect(ps.code != 0)
        #expect(
            ps.stderr.contains(
                "the daemon at \(harness.socketPath) runs as uid \(Self.nobody), not as you or root; refusing to send it anything"
            ),
            "\(ps.stderr)")

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--env", "HF_TOKEN=hunter2"])
        #expect(up.code != 0)
        #expect(up.stderr.contains("runs as uid \(Self.nobody)"), "\(up.stderr)")

        fake.stop()
        let seen = (try? String(contentsOfFile: received, encoding: .utf8)) ?? ""
        #expect(
            !seen.contains("GET") && !seen.contains("POST") && !seen.contains("hunter2"),
            "the listener got nothing: \(seen)")
    }

    /// Answers every connection like a daemon with no servers and prints what it received.
    static let fakeDaemon = #"""
        import socket, sys
        s = socket.socket(socket.AF_UNIX)
        s.bind(sys.argv[1])
        s.listen(8)
        while True:
            c, _ = s.accept()
            try:
                c.settimeout(2)
                data = c.recv(65536)
                print(repr(data), flush=True)
                c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"servers":[]}')
            except OSError:
                pass
            finally:
                c.close()
        """#
}

extension Harness {
    /// Runs agentrond until it exits by itself (a refused start); killed by pid after `timeout`.
    func runDaemonToExit(timeout: Duration = .seconds(20)) async throws -> Result {
        let process = Process()
        process.executableURL = binDirectory.appendingPathComponent("agentrond")
        process.environment = environment
        let err = home.appendingPathComponent("agentrond-exit.err")
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        try await Self.waitForExit(
            process, timeout: timeout, else: "agentrond kept running instead of refusing to start")
        return Result(
            code: process.terminationStatus, stdout: "",
            stderr: (try? String(contentsOfFile: err.path, encoding: .utf8)) ?? "")
    }

    /// A process started as nobody (setpriv, no supplementary groups); `stop()` kills it by pid.
    struct NobodyProcess {
        let process: Process
        func stop() {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    func startAsNobody(_ arguments: [String], stdoutPath: String) throws -> NobodyProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.asNobody[0])
        process.arguments = Array(Self.asNobody.dropFirst()) + arguments
        // Opened here, as root: nobody writes through the inherited descriptor only.
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return NobodyProcess(process: process)
    }

    /// Runs a short command as nobody to completion (killed by pid after 30 s).
    func runAsNobody(_ arguments: [String]) throws -> Result {
        let out = home.appendingPathComponent("nobody-\(UUID().uuidString.prefix(8)).out").path
        let running = try startAsNobody(arguments, stdoutPath: out)
        let deadline = Date().addingTimeInterval(30)
        while running.process.isRunning, Date() < deadline { usleep(10_000) }
        running.stop()
        running.process.waitUntilExit()
        return Result(
            code: running.process.terminationStatus,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", stderr: "")
    }
}
