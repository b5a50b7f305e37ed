#if canImport(Glibc)
import Glibc
#endif

// Process plumbing: unbuffered console lines, the re-exec'd child roles (EngineCore,
// escaped helper), process names, signal masks and a monotonic clock.

/// Writes whole lines straight to fd 1 or 2. One write(2) per line: nothing sits in a
/// buffer when the process is SIGKILLed, and lines from the event loop and the main thread
/// never interleave mid-line.
enum Console {
    static func out(_ line: String) { writeLine(line, to: STDOUT_FILENO) }
    static func err(_ line: String) { writeLine(line, to: STDERR_FILENO) }

    static func writeLine(_ line: String, to fd: Int32) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// The hidden roles the fixture re-executes itself in. argv[1] carries the role; argv[0] is
/// the name `ps -o args` shows, like vLLM's setproctitle("VLLM::EngineCore").
enum ChildRole: String, CaseIterable {
    case engineCore = "--fake-engine-role=engine-core"
    case escapedHelper = "--fake-engine-role=escaped-helper"

    var argv0: String {
        switch self {
        case .engineCore: "VLLM::EngineCore"
        case .escapedHelper: "fake-escaped"
        }
    }

    /// The comm name (15 bytes at most), what `ps -o comm` and `pgrep` see.
    var processName: String {
        switch self {
        case .engineCore: "VLLM::EngineCor"
        case .escapedHelper: "fake-escaped"
        }
    }

    /// Runs the role and never returns.
    func run() -> Never {
        ProcessControl.setProcessName(processName)
        ProcessControl.restoreDefaultSignals()
        switch self {
        case .engineCore:
            // Idles like an EngineCore waiting for work. Default SIGTERM action: it exits
            // when signalled, but nothing tells it when the API server dies (no
            // PR_SET_PDEATHSIG), which is the orphan agentron has to clean up.
            if FaultKnobs.isOn(getenv("FAKE_IGNORE_SIGTERM").map { String(cString: $0) }) {
                Glibc.signal(SIGTERM, SIG_IGN)
            }
        case .escapedHelper:
            // Leaves the engine's process group and session, so a group kill misses it.
            _ = setsid()
        }
        while true { pause() }
    }
}

enum ProcessControl {
    /// Sets the comm name (15 bytes at most). prctl(PR_SET_NAME) is variadic, so Swift does
    /// not import it, and Glibc's module hides pthread_setname_np; writing /proc/self/comm
    /// (the thread group leader's comm, proc(5)) is the same operation for a process whose
    /// only thread is the main one.
    static func setProcessName(_ name: String) {
        let fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Signals the API server waits for with sigtimedwait instead of handlers.
    static var awaitedSignals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGTERM, SIGINT, SIGCHLD] { sigaddset(&set, signal) }
        return set
    }

    /// Blocks the awaited signals in this thread and every thread started after it (NIO's
    /// event loop), so only the main thread's sigtimedwait sees them.
    static func blockAwaitedSignals() {
        var set = awaitedSignals
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    static func restoreDefaultSignals() {
        for signal in [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP] { Glibc.signal(signal, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
    }

    /// Re-executes this binary (/proc/self/exe) in `role`. The child starts with an empty
    /// signal mask and default dispositions, in this process's group and session. It
    /// inherits stdout/stderr (vLLM's children log to the same streams) and, when asked,
    /// `inheritedFD` (cleared of FD_CLOEXEC for the exec).
    static func spawnSelf(_ role: ChildRole, inheritedFD: Int32? = nil) -> pid_t? {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        if let inheritedFD {
            // dup2 onto itself clears FD_CLOEXEC in the child only (glibc ≥ 2.29 semantics);
            // clearing it here briefly is simpler and portable, and nothing else forks now.
            let flags = fcntl(inheritedFD, F_GETFD)
            _ = fcntl(inheritedFD, F_SETFD, flags & ~FD_CLOEXEC)
        }
        defer {
            if let inheritedFD {
                let flags = fcntl(inheritedFD, F_GETFD)
                _ = fcntl(inheritedFD, F_SETFD, flags | FD_CLOEXEC)
            }
        }

        let argv = [role.argv0, role.rawValue]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for pointer in cArgs { free(pointer) } }

        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/proc/self/exe", &fileActions, &attributes, cArgs, environ)
        guard result == 0 else {
            Console.err("fake-engine: cannot spawn \(role.argv0): \(String(cString: strerror(result)))")
            return nil
        }
        return pid
    }

    /// Stops a child the polite way: SIGTERM, up to `grace` seconds, then SIGKILL; reaps it.
    static func terminate(_ pid: pid_t, grace: Double) {
        guard kill(pid, SIGTERM) == 0 else { return }
        let deadline = Clock.now() + grace
        var status: Int32 = 0
        while Clock.now() < deadline {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || reaped < 0 { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
    }
}

enum Clock {
    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func unixTime() -> Int { Int(time(nil)) }

    /// "11-25 10:00:00", the local-time stamp vLLM's logger prints.
    static func vllmStamp() -> String { format("%m-%d %H:%M:%S", utc: false) }

    /// "Tue, 25 Nov 2025 10:00:00 GMT" for the HTTP Date header.
    static func httpDate() -> String { format("%a, %d %b %Y %H:%M:%S GMT", utc: true) }

    private static func format(_ pattern: String, utc: Bool) -> String {
        var now = time(nil)
        var parts = tm()
        if utc { gmtime_r(&now, &parts) } else { localtime_r(&now, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
