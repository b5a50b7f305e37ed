import AgentronCore
import CProcessShims
import Glibc
import Synchronization

/// Waits for processes to exit without a thread per process: every watched pidfd sits in
/// one epoll set served by one thread (as swift-subprocess does). A pidfd works for processes
/// that are not our children too, which is what live restore needs.
///
/// As a child subreaper the daemon also inherits orphans from its engines' trees; the
/// same thread reaps those so they never pile up as zombies.
public final class ExitWatcher: Sendable {
    public static let shared = ExitWatcher()

    private struct Watch {
        var pid: Int32
        var continuation: CheckedContinuation<ExitStatus, Never>
    }

    private struct State {
        var watches: [Int32: Watch] = [:]  // keyed by pidfd
        var watchedPids: Set<Int32> = []

        mutating func removeWatch(_ pidfd: Int32) -> Watch? {
            guard let watch = watches.removeValue(forKey: pidfd) else { return nil }
            watchedPids.remove(watch.pid)
            ChildClaims.release(watch.pid)
            return watch
        }
    }

    private let epollFD: Int32
    private let state = Mutex(State())

    /// How often the thread wakes without events to reap orphans adopted as subreaper.
    private static let orphanSweepIntervalMilliseconds: Int32 = 1000

    private init() {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epollFD >= 0, "epoll_create1 failed: errno \(errno)")
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                Unmanaged<ExitWatcher>.fromOpaque(context).takeUnretainedValue().run()
                return nil
            }, unmanaged.toOpaque())
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(thread)
    }

    /// Suspends until the process behind `pidfd` exits, and reaps it when it is our child.
    /// The caller keeps ownership of `pidfd` and closes it after this returns.
    public func waitForExit(pid: Int32, pidfd: Int32) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            state.withLock {
                $0.watches[pidfd] = Watch(pid: pid, continuation: continuation)
                $0.watchedPids.insert(pid)
            }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = pidfd
            if epoll_ctl(epollFD, EPOLL_CTL_ADD, pidfd, &event) != 0 {
                // Cannot watch (bad descriptor): treat as gone rather than hang the waiter.
                let watch = state.withLock { $0.removeWatch(pidfd) }
                watch?.continuation.resume(returning: .unknown)
            }
        }
    }

    private func run() {
        agentron_set_process_name("agentron-exits")
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = epoll_wait(epollFD, &events, Int32(events.count), Self.orphanSweepIntervalMilliseconds)
            if count < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: errno \(errno)")
            }
            for index in 0..<Int(count) {
                handleReadable(pidfd: events[index].data.fd)
            }
            reapOrphans()
        }
    }

    private func handleReadable(pidfd: Int32) {
        var code: Int32 = 0
        var isSignal: Int32 = 0
        let reaped = agentron_pidfd_reap(pidfd, &code, &isSignal)
        let status: ExitStatus
        if reaped == 1 {
            status = isSignal != 0 ? .signaled(signal: code) : .exited(code: code)
        } else if reaped == 0 {
            // Readable but not yet waitable: a spurious wake; keep watching.
            return
        } else {
            status = .unknown  // ECHILD: not our child (re-adopted), or reaped elsewhere
        }
        epoll_ctl(epollFD, EPOLL_CTL_DEL, pidfd, nil)
        let watch = state.withLock { $0.removeWatch(pidfd) }
        watch?.continuation.resume(returning: status)
    }

    /// Reaps zombies that are our children but no engine's main process: grandchildren of
    /// engines reparented to the daemon (it is a subreaper). Runs every second on the
    /// watcher's thread, and at the end of a stop so `down` leaves no zombie behind.
    ///
    /// Only in a subreaper (the daemon): any other process's zombie children are its own,
    /// and whoever started them (Foundation's Process, in a test run) reaps them; a sweep
    /// there would steal their exit statuses.
    public func reapOrphans() {
        guard Self.isSubreaper.load(ordering: .relaxed) else { return }
        sweep()
    }

    /// Set once the process has become a child subreaper (`Spawner.becomeSubreaper`).
    static let isSubreaper = Atomic(false)

    /// The sweep itself (tests call it directly). It reads only the daemon's own children
    /// lists, not every process on the machine: with a hundred engines a /proc scan each
    /// second was a quarter of the daemon's CPU (issue #14). waitpid(WNOHANG) reaps a
    /// zombie and leaves a live child alone.
    func sweep() {
        let me = getpid()
        ChildClaims.whileNoneIsSpawned { claimed in
            let kept = state.withLock { $0.watchedPids }.union(claimed)
            let children =
                ProcStat.childPIDs(of: me)
                ?? ProcStat.all().filter { $0.ppid == me && $0.isZombie }.map(\.pid)
            for pid in children where !kept.contains(pid) {
                var status: Int32 = 0
                waitpid(pid, &status, WNOHANG)
            }
        }
    }
}

/// The children `Spawner` started whose exit nobody has collected yet. The orphan sweep
/// leaves them to their waiter, even one that has not registered yet: an engine that exits
/// between its spawn and its waiter's registration keeps its exit status. A spawn and a
/// sweep never overlap, so the sweep cannot see a child of ours before it is claimed.
/// Static, not part of `ExitWatcher.shared`, so the CLI's spawn of the daemon starts no
/// watcher thread.
enum ChildClaims {
    private static let claimed = Mutex(Set<Int32>())
    /// Held across a fork and its claim, and across a sweep.
    private static let gate = Mutex(())

    static func spawn<E: Error>(_ body: () throws(E) -> Int32) throws(E) -> Int32 {
        try gate.withLock { _ throws(E) -> Int32 in
            let pid = try body()
            claimed.withLock { _ = $0.insert(pid) }
            return pid
        }
    }

    static func release(_ pid: Int32) {
        claimed.withLock { _ = $0.remove(pid) }
    }

    static func whileNoneIsSpawned(_ body: (Set<Int32>) -> Void) {
        gate.withLock { _ in body(claimed.withLock { $0 }) }
    }
}
