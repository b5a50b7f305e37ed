import Foundation
import Glibc
import Testing

/// The real agentrond under a pretend systemd (issue #6): this test owns the datagram
/// NOTIFY_SOCKET and reads what the daemon tells the service manager, and passes a
/// listening socket the way socket activation does. systemd need not run here.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SystemdTests {
    @Test func readyStatusWatchdogAndStoppingReachTheServiceManager() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let manager = try NotifyListener(path: harness.home.appendingPathComponent("notify.sock").path) {
            // Checked the moment READY=1 is read: the socket must already accept.
            $0 == "READY=1" ? harness.isListening() : nil
        }
        defer { manager.stop() }

        let daemon = try SpawnedProcess(
            arguments: [harness.binDirectory.appendingPathComponent("agentrond").path],
            environment: harness.environment.merging([
                "NOTIFY_SOCKET": manager.path,
                // 0.4 s: pings every 0.2 s. WATCHDOG_PID is left out (the pid is unknown
                // before the spawn); sd_watchdog_enabled accepts that.
                "WATCHDOG_USEC": "400000",
            ]) { $1 },
            logPath: harness.home.appendingPathComponent("agentrond.test.log").path)
        defer { daemon.kill() }

        let ready = try await manager.waitFor("READY=1", timeout: 15, log: harness.daemonLog)
        #expect(ready.check == true, "READY=1 arrived before the control socket accepted")
        let firstStatus = try await manager.waitFor(
            where: { $0.hasPrefix("STATUS=") }, timeout: 5, log: harness.daemonLog)
        #expect(firstStatus.text == "STATUS=no servers")

        // Pings at half of WATCHDOG_USEC: about 5 a second.
        let before = manager.count("WATCHDOG=1")
        try await Task.sleep(for: .seconds(2))
        let pings = manager.count("WATCHDOG=1") - before
        #expect((6...14).contains(pings), "\(pings) watchdog pings in 2 s, expected about 10")

        let up = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--env", "FAKE_LOAD_SECONDS=1.5",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("m").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let enginePids = try await harness.readPids("m")
        _ = try await manager.waitFor("STATUS=1 server: 1 ready", timeout: 10, log: harness.daemonLog)
        let statuses = manager.messages.map(\.text).filter { $0.hasPrefix("STATUS=") }
        #expect(statuses.first == "STATUS=no servers")
        #expect(
            statuses.contains("STATUS=1 server: 1 starting"),
            "the load takes 1.5 s, the status is polled every second: \(statuses)")
        for (previous, next) in zip(statuses, statuses.dropFirst()) {
            #expect(previous != next, "STATUS= is sent only when it changes: \(statuses)")
        }

        daemon.signal(SIGTERM)
        // Generous: the whole suite runs in parallel on two cores.
        let code = try await daemon.waitExit(timeout: 90)
        #expect(code == 0, "agentrond exited with \(code): \(harness.daemonLog)")
        // Read after the exit: a datagram that is there was sent before it.
        let stopping = try await manager.waitFor("STOPPING=1", timeout: 2, log: harness.daemonLog)
        let texts = manager.messages.map(\.text)
        let readyIndex = try #require(texts.firstIndex(of: "READY=1"))
        let stoppingIndex = try #require(texts.firstIndex(of: "STOPPING=1"))
        #expect(readyIndex < stoppingIndex)
        #expect(texts.filter { $0 == "READY=1" }.count == 1)
        #expect(stopping.text == "STOPPING=1")
        // Stopped by the daemon itself on SIGTERM: the engine did not outlive it.
        #expect(await Harness.waitGone(enginePids).isEmpty)
    }

    /// A stop longer than the unit's TimeoutStopSec: the daemon asks systemd for more time
    /// while engines are stopping, so systemd never kills it with engines still running.
    @Test func aLongStopAsksTheServiceManagerForMoreTime() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let manager = try NotifyListener(path: harness.home.appendingPathComponent("notify.sock").path) { _ in nil }
        defer { manager.stop() }
        let daemon = try SpawnedProcess(
            arguments: [harness.binDirectory.appendingPathComponent("agentrond").path],
            environment: harness.environment.merging(["NOTIFY_SOCKET": manager.path]) { $1 },
            logPath: harness.home.appendingPathComponent("agentrond.test.log").path)
        defer { daemon.kill() }
        _ = try await manager.waitFor("READY=1", timeout: 15, log: harness.daemonLog)
        let up = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--stop-timeout", "2s", "--env", "FAKE_IGNORE_SIGTERM=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("m").path)",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let enginePids = try await harness.readPids("m")

        daemon.signal(SIGTERM)
        // (The start sent its own extension, of 60 s, at startup.)
        _ = try await manager.waitFor("EXTEND_TIMEOUT_USEC=30000000", timeout: 5, log: harness.daemonLog)
        let code = try await daemon.waitExit(timeout: 30)
        #expect(code == 0)
        let texts = manager.messages.map(\.text)
        let stopping = try #require(texts.firstIndex(of: "STOPPING=1"))
        let extended = try #require(texts.lastIndex(of: "EXTEND_TIMEOUT_USEC=30000000"))
        #expect(stopping < extended, "asked while stopping: \(texts)")
        #expect(
            await Harness.waitGone(enginePids).isEmpty, "the engine ignored SIGTERM and got SIGKILL after its grace")
    }

    @Test func notRunBySystemdNothingIsSentAndTheDaemonWorks() async throws {
        // The harness strips NOTIFY_SOCKET: the ordinary start must not need systemd at all.
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon(environment: ["WATCHDOG_USEC": "400000"])
        #expect(try await harness.run(["ps"]).code == 0)
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0, "\(harness.daemonLog)")
    }

    @Test func socketActivationServesThePassedSocket() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let manager = try NotifyListener(path: harness.home.appendingPathComponent("notify.sock").path)
        defer { manager.stop() }

        // What systemd does for agentrond.socket: create, bind and listen, then pass it as fd 3.
        let activationPath = harness.home.appendingPathComponent("activated.sock").path
        let listener = try UnixSocket.listen(at: activationPath)
        defer { close(listener) }
        // LISTEN_PID must be the daemon's own pid, known only after the spawn: a shell sets
        // it to its own ($$) and execs agentrond, which keeps that pid and fd 3.
        let daemon = try SpawnedProcess(
            arguments: [
                "/bin/sh", "-c", #"LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec "$0""#,
                harness.binDirectory.appendingPathComponent("agentrond").path,
            ],
            environment: harness.environment.merging(["NOTIFY_SOCKET": manager.path]) { $1 },
            logPath: harness.home.appendingPathComponent("agentrond.test.log").path,
            passing: listener)
        defer { daemon.kill() }

        _ = try await manager.waitFor("READY=1", timeout: 15, log: harness.daemonLog)
        // The daemon answers on the passed socket, and did not bind its own path.
        #expect(
            !FileManager.default.fileExists(atPath: harness.socketPath),
            "bound \(harness.socketPath) despite LISTEN_FDS")
        let reply = try UnixSocket.get("/v1/daemon", at: activationPath)
        #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply)")
        #expect(reply.contains("\"pid\":\(daemon.pid)") || reply.contains("\"pid\" : \(daemon.pid)"), "\(reply)")

        daemon.signal(SIGTERM)
        #expect(try await daemon.waitExit(timeout: 30) == 0, "\(harness.daemonLog)")
        // systemd owns the socket file: it stays for the next start.
        #expect(FileManager.default.fileExists(atPath: activationPath))
    }

    // MARK: agentron service

    /// The repository, from this file's place in it.
    static let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func unitFile(_ name: String) throws -> String {
        try String(contentsOf: sourceRoot.appendingPathComponent("units/\(name)"), encoding: .utf8)
    }

    /// units/<name> as install writes it: the same bytes, with ExecStart naming `agentrond`.
    static func installedUnit(_ name: String, agentrond: String) throws -> String {
        try unitFile(name).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("ExecStart=") ? "ExecStart=" + agentrond : String($0) }
            .joined(separator: "\n")
    }

    @Test(arguments: [
        ([], "agentrond.service", "agentrond.socket", "/etc/systemd/system", "systemctl"),
        (["--user"], "agentrond-user.service", "agentrond-user.socket", "/cfg/systemd/user", "systemctl --user"),
    ])
    func dryRunPrintsTheUnitsFromUnitsDirectory(
        flags: [String], service: String, socket: String, directory: String, systemctl: String
    ) async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let result = try await harness.run(
            ["service", "install", "--dry-run", "--socket", "--agentrond", "/opt/agentron/bin/agentrond"] + flags,
            environment: ["XDG_CONFIG_HOME": "/cfg"])
        #expect(result.code == 0, "\(result.stderr)")
        // Install writes units/ itself (embedded at build time), ExecStart pointed at the
        // agentrond being installed, and every other byte as it is.
        let expected = try Self.installedUnit(service, agentrond: "/opt/agentron/bin/agentrond")
        #expect(expected != (try Self.unitFile(service)))
        #expect(result.stdout.contains("# \(directory)/agentrond.service\n" + expected))
        #expect(result.stdout.contains("# \(directory)/agentrond.socket\n" + (try Self.unitFile(socket))))
        #expect(result.stdout.contains("\(systemctl) daemon-reload\n"))
        #expect(result.stdout.contains("\(systemctl) enable --now agentrond.socket agentrond.service\n"))
    }

    @Test func installPointsExecStartAtTheAgentrondBesideIt() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let sibling = harness.binDirectory.appendingPathComponent("agentrond").path
        let plain = try await harness.run(["service", "install", "--dry-run"])
        #expect(plain.code == 0, "\(plain.stderr)")
        #expect(plain.stdout.contains("\nExecStart=\(sibling)\n"), "\(plain.stdout)")
        #expect(!plain.stdout.contains("agentrond.socket"))
        #expect(plain.stdout.contains("systemctl enable --now agentrond.service\n"))

        let spaced = try await harness.run(["service", "install", "--dry-run", "--agentrond", "/opt/my 100%/agentrond"])
        #expect(spaced.stdout.contains(#"ExecStart="/opt/my 100%%/agentrond""#), "\(spaced.stdout)")

        let relative = try await harness.run(["service", "install", "--agentrond", "bin/agentrond"])
        #expect(relative.code != 0)
        #expect(relative.stderr.contains("absolute path"))
    }

    /// A real (non-dry) install of the user unit into a private XDG_CONFIG_HOME. Only where
    /// systemd does not run: there it would enable the unit for real.
    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/run/systemd/system")))
    func installStatusUninstallWithoutSystemd() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let config = harness.home.appendingPathComponent("xdg-config").path
        let runtime = harness.home.appendingPathComponent("xdg-run").path
        // The user unit's socket is $XDG_RUNTIME_DIR/agentron/agentron.sock. The daemon runs
        // under AGENTRON_HOME (never at real user or root paths, whoever runs the tests), so
        // that socket is a link to its socket. The directory itself is real and private: the
        // CLI refuses a symlinked runtime directory (RuntimeDirectory).
        try FileManager.default.createDirectory(
            atPath: runtime + "/agentron", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(
            atPath: runtime + "/agentron/agentron.sock", withDestinationPath: harness.socketPath)
        let environment = ["XDG_CONFIG_HOME": config, "XDG_RUNTIME_DIR": runtime]
        let unitPath = config + "/systemd/user/agentrond.service"
        let userSocket = runtime + "/agentron/agentron.sock"

        let install = try await harness.run(
            ["service", "install", "--user"], environment: environment, timeout: .seconds(60))
        #expect(install.code == 0, "\(install.stderr)")
        #expect(install.stdout.contains("wrote \(unitPath)"))
        #expect(install.stdout.contains("systemd is not running on this machine"))
        // Enabled offline, as `systemctl enable` would: it starts at the next boot.
        let wants = config + "/systemd/user/default.target.wants/agentrond.service"
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: wants) == unitPath, "\(install.stdout)")
        #expect(
            install.stdout.contains("no agentrond answers on \(userSocket): nothing started one"), "\(install.stdout)")
        let agentrond = harness.binDirectory.appendingPathComponent("agentrond").path
        let written = try String(contentsOfFile: unitPath, encoding: .utf8)
        #expect(written.contains("ExecStart=\(agentrond)\n"))
        #expect(written == (try Self.installedUnit("agentrond-user.service", agentrond: agentrond)))

        // A daemon on the user unit's socket: status finds it.
        let daemon = try await harness.startDaemon()
        let status = try await harness.run(["service", "status", "--user", "--json"], environment: environment)
        #expect(status.code == 0, "\(status.stderr)")
        let report = try harness.json(status.stdout)
        let service = try #require(report["service"] as? [String: Any])
        #expect(service["installed"] as? Bool == true)
        #expect(service["path"] as? String == unitPath)
        #expect((report["systemd"] as? [String: Any])?["running"] as? Bool == false)
        let answer = try #require(report["daemon"] as? [String: Any])
        #expect(answer["answering"] as? Bool == true, "\(status.stdout)\n\(harness.daemonLog)")
        #expect((answer["pid"] as? Int).map(Int32.init) == daemon.processIdentifier)

        let text = try await harness.run(["service", "status", "--user"], environment: environment)
        #expect(text.stdout.contains("unit      \(unitPath) (installed)"))
        #expect(text.stdout.contains("(pid \(daemon.processIdentifier))"), "\(text.stdout)")

        let uninstall = try await harness.run(["service", "uninstall", "--user"], environment: environment)
        #expect(uninstall.code == 0, "\(uninstall.stderr)")
        #expect(uninstall.stdout.contains("removed \(unitPath)"))
        #expect(!FileManager.default.fileExists(atPath: unitPath))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: wants)) == nil, "the wants link is gone")
        let again = try await harness.run(["service", "uninstall", "--user"], environment: environment)
        #expect(again.code == 0)
        #expect(again.stderr.contains("nothing to remove"))
    }
}

// MARK: Helpers

/// The service manager's end of NOTIFY_SOCKET: a datagram socket read by its own thread,
/// keeping every message with the result of `check` run the moment it was read.
final class NotifyListener: @unchecked Sendable {
    struct Message {
        var text: String
        var check: Bool?
    }

    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)

    init(path: String, check: @escaping @Sendable (String) -> Bool? = { _ in nil }) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        guard UnixSocket.bind(fd, to: path) else { throw HarnessError("bind \(path): errno \(errno)") }
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !lock.withLock({ stopped }) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) == 1 else { continue }
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { continue }
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                let result = check(text)
                lock.withLock { received.append(Message(text: text, check: result)) }
            }
            done.signal()
        }
    }

    var messages: [Message] { lock.withLock { received } }

    func count(_ text: String) -> Int { messages.filter { $0.text == text }.count }

    func waitFor(_ text: String, timeout: Double, log: @autoclosure () -> String) async throws -> Message {
        try await waitFor(where: { $0 == text }, timeout: timeout, log: log())
    }

    func waitFor(where matches: (String) -> Bool, timeout: Double, log: @autoclosure () -> String) async throws
        -> Message
    {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message = messages.first(where: { matches($0.text) }) { return message }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw HarnessError(
            "no such notification within \(timeout) s; got \(messages.map(\.text)); daemon log: \(log())")
    }

    func stop() {
        lock.withLock { stopped = true }
        done.wait()
        close(fd)
        unlink(path)
    }
}

/// A child started with posix_spawn, so it can inherit a listening socket as fd 3 (Process
/// cannot pass descriptors). Killed by pid in `kill()`, which tests call from a defer.
final class SpawnedProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exitCode: Int32?

    init(arguments: [String], environment: [String: String], logPath: String, passing listener: Int32? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let listener {
            // dup2 onto fd 3 clears close-on-exec on the copy; the original keeps it.
            posix_spawn_file_actions_adddup2(&actions, listener, 3)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a stray signal to ours never reaches it and back.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw HarnessError("posix_spawn \(arguments[0]): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    func signal(_ signal: Int32) {
        if lock.withLock({ exitCode }) == nil { Glibc.kill(pid, signal) }
    }

    /// Reaps the child; nil while it runs.
    private func poll() -> Int32? {
        if let code = lock.withLock({ exitCode }) { return code }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        lock.withLock { exitCode = code }
        return code
    }

    func waitExit(timeout: Double) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let code = poll() { return code }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("pid \(pid) did not exit within \(timeout) s")
    }

    /// SIGTERM, a grace for the daemon to stop its engines, then SIGKILL; always reaped.
    func kill() {
        guard poll() == nil else { return }
        Glibc.kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while poll() == nil, Date() < deadline { usleep(10_000) }
        if poll() == nil {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            lock.withLock { exitCode = 137 }
        }
    }
}

enum UnixSocket {
    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        return address
    }

    static func bind(_ fd: Int32, to path: String) -> Bool {
        var address = address(path)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        } == 0
    }

    /// A listening stream socket at `path`, close-on-exec (only the dup2'd fd 3 is passed).
    static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        guard bind(fd, to: path), Glibc.listen(fd, 16) == 0 else {
            close(fd)
            throw HarnessError("bind/listen \(path): errno \(errno)")
        }
        return fd
    }

    /// One HTTP/1.0 GET over the socket: the raw reply, headers and body.
    static func get(_ target: String, at path: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { throw HarnessError("connect \(path): errno \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            reply += buffer[0..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
