import CSystemd
import Glibc

/// Tells the service manager how agentrond is doing (sd_notify(3)): READY=1 once the
/// control socket accepts, STATUS= lines, WATCHDOG=1 pings, STOPPING=1 on shutdown.
/// Every call is a no-op when systemd did not start the process (no NOTIFY_SOCKET), so the
/// daemon calls them unconditionally (issue #6).
///
/// NOTIFY_SOCKET stays in the environment (unset_environment=0) because the daemon
/// notifies for as long as it runs. Engines never see it: their environment is built from
/// an allow-list that denies it (ChildEnvironment, docs/configuration.md).
public struct SystemdNotifier: Sendable, Equatable {
    public enum Destination: Sendable, Equatable {
        /// Not run by systemd: every call does nothing.
        case none
        /// This process's NOTIFY_SOCKET, through libsystemd (handles abstract and vsock
        /// addresses and passes our credentials the way systemd checks them).
        case processEnvironment
        /// An explicit AF_UNIX datagram socket path (`@name` for the abstract namespace):
        /// tests play the service manager with it without touching the process environment.
        case socket(path: String)
    }

    public let destination: Destination

    public init(destination: Destination) {
        self.destination = destination
    }

    /// Notifies the datagram socket at `socketPath`, as systemd would pass it in NOTIFY_SOCKET.
    public init(socketPath: String) {
        self.destination = .socket(path: socketPath)
    }

    /// Whether systemd started this process and listens for notifications (NOTIFY_SOCKET set).
    public static var isManaged: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// The notifier for this process: libsystemd when managed, a no-op otherwise.
    public static var current: SystemdNotifier {
        SystemdNotifier(destination: isManaged ? .processEnvironment : .none)
    }

    public var isEnabled: Bool { destination != .none }

    /// READY=1: startup is finished and the control socket accepts connections.
    @discardableResult public func ready() -> Bool { send("READY=1") }

    /// STATUS=: one human line for `systemctl status`. Newlines would end the assignment,
    /// so they become spaces.
    @discardableResult public func status(_ line: String) -> Bool {
        send("STATUS=" + String(line.map { $0.isNewline ? " " : $0 }))
    }

    /// WATCHDOG=1: the daemon's main loop is alive.
    @discardableResult public func watchdog() -> Bool { send("WATCHDOG=1") }

    /// STOPPING=1: graceful shutdown began (engines may take their grace period to stop).
    @discardableResult public func stopping() -> Bool { send("STOPPING=1") }

    /// RELOADING=1 with the monotonic timestamp that Type=notify-reload requires; follow it
    /// with `ready()` when the reload is done.
    @discardableResult public func reloading() -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        return send("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// EXTEND_TIMEOUT_USEC: slow work (restoring servers) needs `duration` more before the
    /// start (or stop) timeout fires. Send it again before it runs out.
    @discardableResult public func extendTimeout(_ duration: Duration) -> Bool {
        send("EXTEND_TIMEOUT_USEC=\(Self.microseconds(duration))")
    }

    /// Sends newline-separated assignments as one datagram; false when nothing was sent
    /// (not managed, or the socket is gone: the manager learns nothing, the daemon carries on).
    @discardableResult public func send(_ state: String) -> Bool {
        switch destination {
        case .none:
            return false
        case .processEnvironment:
            return sd_notify(0, state) > 0
        case .socket(let path):
            return Self.sendDatagram(Array(state.utf8), to: path)
        }
    }

    // MARK: Watchdog

    /// How often to send WATCHDOG=1: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    /// recommends, or nil when the manager expects no pings (no WatchdogSec=, or
    /// WATCHDOG_PID names another process).
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return Watchdog.pingInterval(timeout: .microseconds(Int64(clamping: usec)))
    }

    // MARK: Helpers

    static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }

    /// One datagram to an AF_UNIX socket; a leading `@` means the abstract namespace, as in
    /// NOTIFY_SOCKET.
    static func sendDatagram(_ message: [UInt8], to path: String) -> Bool {
        var pathBytes = Array(path.utf8)
        guard !pathBytes.isEmpty else { return false }
        let isAbstract = pathBytes[0] == UInt8(ascii: "@")
        if isAbstract { pathBytes[0] = 0 }
        var address = sockaddr_un()
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        // Abstract names are exactly as long as given; paths are NUL-terminated.
        let length =
            isAbstract
            ? MemoryLayout<sa_family_t>.size + pathBytes.count : MemoryLayout<sockaddr_un>.size

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { bytes in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, socklen_t(length))
                }
            }
        }
        return sent == message.count
    }
}

/// The watchdog rules of sd_watchdog_enabled(3), on an explicit environment so they can be
/// checked without one.
public enum Watchdog {
    /// WATCHDOG_USEC as a duration; nil when unset, unparsable or zero, or when WATCHDOG_PID
    /// is set and is not `pid` (the variables were meant for another process).
    public static func timeout(environment: [String: String], pid: pid_t = getpid()) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"] {
            guard let ownerPid = pid_t(owner), ownerPid == pid else { return nil }
        }
        return .microseconds(Int64(clamping: usec))
    }

    /// Ping at half the timeout: one late ping still leaves time before the manager acts.
    public static func pingInterval(timeout: Duration) -> Duration { timeout / 2 }
}
