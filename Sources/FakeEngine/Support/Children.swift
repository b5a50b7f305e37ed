#if canImport(Glibc)
    import Glibc
#endif

// The child processes every mode may start, all this binary re-executed from
// /proc/self/exe: vLLM's EngineCore, Ollama's runners, and the helper that escapes the
// session (FAKE_ESCAPE_HELPER). Also the signal plumbing the main thread relies on.

/// A hidden role, named by argv[1]; argv[0] is what `ps -o args` shows, like vLLM's
/// setproctitle("VLLM::EngineCore").
enum ChildRole: String, CaseIterable {
    case engineCore = "--fake-engine-role=engine-core"
    case escapedHelper = "--fake-engine-role=escaped-helper"

    var argv: [String] { [self == .engineCore ? "VLLM::EngineCore" : "fake-escaped", rawValue] }

    /// Runs the role and never returns.
    func run() -> Never {
        switch self {
        // Idles like an EngineCore waiting for work; nothing tells it when the API server
        // dies (no PR_SET_PDEATHSIG), which is the orphan agentron has to clean up.
        case .engineCore: Children.idle(comm: "VLLM::EngineCor")
        // Leaves the engine's process group and session, so a group kill misses it.
        case .escapedHelper:
            _ = setsid()
            Children.idle(comm: "fake-escaped", honourIgnoreSigterm: false)
        }
    }
}

enum Children {
    static let awaitedSignals = [SIGTERM, SIGINT, SIGCHLD]
    static let defaultedSignals = [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP]

    /// A child that waits for a signal with its default action. With FAKE_IGNORE_SIGTERM it
    /// ignores SIGTERM, as the process that started it does.
    static func idle(comm: String, honourIgnoreSigterm: Bool = true) -> Never {
        setProcessName(comm)
        for signal in defaultedSignals { Glibc.signal(signal, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        if honourIgnoreSigterm, Knobs.isOn(getenv("FAKE_IGNORE_SIGTERM").map { String(cString: $0) }) {
            Glibc.signal(SIGTERM, SIG_IGN)
        }
        while true { pause() }
    }

    /// Sets the comm name (15 bytes at most). prctl(PR_SET_NAME) is variadic, so Swift does
    /// not import it; writing /proc/self/comm is the same for a single-threaded process.
    static func setProcessName(_ name: String) {
        let fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Blocks the signals the main thread waits for with sigtimedwait, in this thread and
    /// every thread started after it (NIO's event loop). Call before any thread or child.
    static func blockAwaitedSignals() {
        var set = signalSet(awaitedSignals)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    static func signalSet(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }

    /// The next awaited signal, or nil when `deadline` passes first (or on EINTR).
    static func waitForSignal(until deadline: Double?) -> Int32? {
        var set = signalSet(awaitedSignals)
        var info = siginfo_t()
        guard let deadline else { return positive(sigwaitinfo(&set, &info)) }
        var timeout = timespec(deadline - Clock.now())
        return positive(sigtimedwait(&set, &info, &timeout))
    }

    private static func positive(_ value: Int32) -> Int32? { value > 0 ? value : nil }

    /// Re-executes this binary with `argv`, in this process's group and session, with an
    /// empty signal mask and default dispositions. It inherits stdout and stderr (the
    /// engines' children log to the same streams).
    static func spawn(_ argv: [String]) -> pid_t? {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = signalSet([])
        var defaults = signalSet(defaultedSignals)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArgs { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/proc/self/exe", nil, &attributes, &cArgs, environ)
        guard result == 0 else {
            Console.err("fake-engine: cannot spawn \(argv.first ?? ""): \(String(cString: strerror(result)))")
            return nil
        }
        return pid
    }

    /// How long a child gets to exit on shutdown before SIGKILL.
    static let stopGrace = 5.0

    /// Stops a child the polite way: SIGTERM, up to `stopGrace`, then SIGKILL; reaps it.
    static func terminate(_ pid: pid_t) {
        guard kill(pid, SIGTERM) == 0 else { return }
        let deadline = Clock.now() + stopGrace
        var status: Int32 = 0
        while Clock.now() < deadline {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || reaped < 0 { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
    }

    /// Dies with `signal` now: restores its default action and unblocks it first, because
    /// the main thread blocks the signals it waits for.
    static func killSelf(with signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var set = signalSet([signal])
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        kill(getpid(), signal)
        // SIGSTOP and friends return here; a fault knob asked for death, so make sure of it.
        _exit(128 + signal)
    }
}
