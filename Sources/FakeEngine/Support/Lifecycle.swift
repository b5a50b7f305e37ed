#if canImport(Glibc)
    import Glibc
#endif

// The loop every mode runs on its main thread: load, listen, serve, and the faults on the
// way (FAKE_CRASH_AFTER, FAKE_HANG_AFTER, FAKE_IGNORE_SIGTERM). The main thread owns
// signals (through sigtimedwait), timers and children; NIO's one event-loop thread serves
// HTTP.

/// What a mode does at the points the shared loop reaches.
protocol Engine: AnyObject {
    var knobs: Knobs { get }
    var service: HTTPService { get }
    /// Loading is done: listen and serve, or exit the way the engine does when it cannot.
    func startServing()
    /// A child exited; it is reaped already.
    func childExited(_ pid: pid_t)
    /// SIGTERM or SIGINT: the engine's graceful shutdown, exit 0.
    func shutDown(serving: Bool) -> Never
    /// FAKE_CRASH_AFTER without FAKE_CRASH_SIGNAL: the engine's crash report, then exit
    /// with FAKE_CRASH_CODE.
    func crash() -> Never
    /// One warning line in the engine's own log format.
    func warn(_ message: String)
}

extension Engine {
    /// Loads until `loadSeconds` after `startedAt` (connections refused meanwhile), then
    /// serves until a signal or a crash.
    func runLifecycle(startedAt: Double, loadSeconds: Double) -> Never {
        var serving = false
        var crashAt: Double?
        var hangAt: Double?
        while true {
            let deadline = serving ? [crashAt, hangAt].compactMap { $0 }.min() : startedAt + loadSeconds
            if let signal = Children.waitForSignal(until: deadline) { handle(signal, serving: serving) }
            let now = Clock.now()
            if !serving, now >= startedAt + loadSeconds {
                startServing()
                serving = true
                let listenedAt = Clock.now()
                crashAt = knobs.crashAfter.map { listenedAt + $0 }
                hangAt = knobs.hangAfter.map { listenedAt + $0 }
            }
            if let due = hangAt, now >= due {
                hangAt = nil
                service.hung.set()
                warn("FAKE_HANG_AFTER: from now on no request gets an answer")
            }
            if let due = crashAt, now >= due {
                guard let signal = knobs.crashSignal else { crash() }
                // Nothing is cleaned up: the children are orphaned.
                warn("FAKE_CRASH_AFTER: killing this process with signal \(signal)")
                Children.killSelf(with: signal)
            }
        }
    }

    private func handle(_ signal: Int32, serving: Bool) {
        switch signal {
        case SIGCHLD:
            var status: Int32 = 0
            while case let pid = waitpid(-1, &status, WNOHANG), pid > 0 { childExited(pid) }
        case SIGTERM, SIGINT:
            guard knobs.ignoreSigterm else { shutDown(serving: serving) }
            warn("Received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); ignoring it (FAKE_IGNORE_SIGTERM=1)")
        default:
            break
        }
    }
}

/// Why a socket could not be bound: an errno, or a name that did not resolve.
struct BindFailure: Error {
    var code: Int32
    var resolverMessage: String?
    var message: String { resolverMessage ?? String(cString: strerror(code)) }
}

enum Socket {
    /// A TCP socket bound to `host` (nil or "": every IPv4 interface) and `port`, not yet
    /// listening: AF_INET6 for an IPv6 literal, SO_REUSEADDR, no SO_REUSEPORT, so a second
    /// engine on a taken port fails as the real ones do.
    static func bind(host: String?, port: Int) -> Result<Int32, BindFailure> {
        var hints = addrinfo()
        var probe = in6_addr()
        hints.ai_family = inet_pton(AF_INET6, host ?? "", &probe) == 1 ? AF_INET6 : AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var results: UnsafeMutablePointer<addrinfo>?
        let name = host.flatMap { $0.isEmpty ? nil : $0 }
        let status = getaddrinfo(name, String(port), &hints, &results)
        defer { if let results { freeaddrinfo(results) } }
        guard status == 0, let address = results?.pointee else {
            return .failure(BindFailure(code: status, resolverMessage: String(cString: gai_strerror(status))))
        }
        let fd = socket(address.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(BindFailure(code: errno)) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, address.ai_addr, address.ai_addrlen) == 0 else {
            let code = errno
            close(fd)
            return .failure(BindFailure(code: code))
        }
        return .success(fd)
    }
}
