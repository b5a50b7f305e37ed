import AgentronSystemd
import Glibc
import Testing

@Suite struct SystemdNotifierTests {
    @Test func sendsEachNotificationAsOneDatagramInOrder() throws {
        let manager = try NotifySocket()
        let notifier = SystemdNotifier(socketPath: manager.path)
        #expect(notifier.isEnabled)

        #expect(notifier.status("3 servers: 2 ready, 1 starting"))
        #expect(notifier.ready())
        #expect(notifier.watchdog())
        #expect(notifier.extendTimeout(.seconds(90)))
        #expect(notifier.extendTimeout(.milliseconds(1500)))
        #expect(notifier.stopping())

        #expect(manager.receive() == "STATUS=3 servers: 2 ready, 1 starting")
        #expect(manager.receive() == "READY=1")
        #expect(manager.receive() == "WATCHDOG=1")
        #expect(manager.receive() == "EXTEND_TIMEOUT_USEC=90000000")
        #expect(manager.receive() == "EXTEND_TIMEOUT_USEC=1500000")
        #expect(manager.receive() == "STOPPING=1")
        #expect(manager.receive(timeoutMilliseconds: 50) == nil)
    }

    @Test func statusIsOneLine() throws {
        let manager = try NotifySocket()
        SystemdNotifier(socketPath: manager.path).status("first\nsecond\r\nthird")
        #expect(manager.receive() == "STATUS=first second third")
    }

    @Test func reloadingCarriesAMonotonicTimestamp() throws {
        let manager = try NotifySocket()
        #expect(SystemdNotifier(socketPath: manager.path).reloading())
        let message = try #require(manager.receive())
        let lines = message.split(separator: "\n")
        #expect(lines.first == "RELOADING=1")
        let usec = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
        #expect(usec > 0)
    }

    @Test func notManagedIsANoOp() {
        let notifier = SystemdNotifier(destination: .none)
        #expect(!notifier.isEnabled)
        #expect(!notifier.ready())
        #expect(!notifier.status("x"))
        #expect(!notifier.watchdog())
        #expect(!notifier.stopping())
        #expect(!notifier.extendTimeout(.seconds(1)))
    }

    @Test func aVanishedManagerIsNotAnError() throws {
        let path: String
        do {
            let manager = try NotifySocket()
            path = manager.path
        }
        // The socket file is gone: nothing is sent, nothing crashes.
        #expect(!SystemdNotifier(socketPath: path).ready())
        #expect(!SystemdNotifier(socketPath: "").ready())
        #expect(!SystemdNotifier(socketPath: "/" + String(repeating: "x", count: 200)).ready())
    }

    @Test func abstractNamespaceSockets() throws {
        let name = "agentron-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count))
            }
        }
        try #require(bound == 0)

        #expect(SystemdNotifier(socketPath: "@" + name).watchdog())
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        try #require(poll(&poller, 1, 2000) == 1)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        #expect(String(decoding: buffer[0..<max(count, 0)], as: UTF8.self) == "WATCHDOG=1")
    }
}

@Suite struct WatchdogTests {
    @Test(
        arguments: [
            // (environment, expected timeout in µs)
            ([:], nil),
            (["WATCHDOG_USEC": "30000000"], 30_000_000),
            (["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "4242"], 400_000),
            (["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "4243"], nil),
            (["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "not-a-pid"], nil),
            (["WATCHDOG_USEC": "0"], nil),
            (["WATCHDOG_USEC": "-5"], nil),
            (["WATCHDOG_USEC": "soon"], nil),
            (["WATCHDOG_PID": "4242"], nil),
        ] as [([String: String], Int64?)])
    func timeoutFollowsSdWatchdogEnabled(environment: [String: String], expected: Int64?) {
        #expect(Watchdog.timeout(environment: environment, pid: 4242) == expected.map { .microseconds($0) })
    }

    @Test func pingsAtHalfTheTimeout() {
        #expect(Watchdog.pingInterval(timeout: .seconds(30)) == .seconds(15))
        #expect(Watchdog.pingInterval(timeout: .microseconds(400_000)) == .milliseconds(200))
    }
}
