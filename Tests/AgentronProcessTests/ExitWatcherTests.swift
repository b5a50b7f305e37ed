import AgentronCore
import Foundation
import Testing

@testable import AgentronProcess

/// One epoll thread watches every pidfd: each exit reaches its own waiter, once, with its
/// own status, however many children end at the same time.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ExitWatcherTests {
    @Test func manyChildrenEachReportTheirOwnExit() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        // Codes 1...30, every fifth child killed by a signal instead; all end together once
        // the test says go, when every waiter is registered.
        let go = scope.path("go")
        var children: [(process: EngineProcess, expected: AgentronCore.ExitStatus)] = []
        for index in 1...30 {
            let end = index % 5 == 0 ? "kill -9 $$" : "exit \(index)"
            let process = try scope.spawn(["sh", "-c", "while [ ! -e \(go) ]; do sleep 0.01; done; \(end)"])
            children.append((process, index % 5 == 0 ? .signaled(signal: SIGKILL) : .exited(code: Int32(index))))
        }
        let results = await withTaskGroup(of: (Int32, AgentronCore.ExitStatus).self) { group in
            for child in children {
                group.addTask {
                    (
                        child.process.pid,
                        await ExitWatcher.shared.waitForExit(pid: child.process.pid, pidfd: child.process.pidfd)
                    )
                }
            }
            try? await Task.sleep(for: Self.registration)
            _ = FileManager.default.createFile(atPath: go, contents: nil)
            return await group.reduce(into: [Int32: AgentronCore.ExitStatus]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == children.count)
        for child in children {
            #expect(results[child.process.pid] == child.expected, "pid \(child.process.pid)")
            #expect(ProcStat.read(pid: child.process.pid) == nil, "pid \(child.process.pid) reaped")
        }
    }

    /// Time for every waiter started just before to register its pidfd, so the children end
    /// together while all are watched.
    static let registration: Duration = .milliseconds(300)

    /// The orphan sweep reaps zombie children nobody watches, but not a child the Spawner
    /// started: an engine that exits between its spawn and its waiter's registration keeps
    /// its exit code (the sweep runs after every exit event and every second, so a crash at
    /// start can meet it).
    @Test func aChildThatExitsBeforeItIsWatchedKeepsItsStatus() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sh", "-c", "exit 3"])
        #expect(await waitUntil(timeout: .seconds(5)) { ProcStat.read(pid: process.pid)?.isZombie == true })
        ExitWatcher.shared.sweep()  // what the daemon's watcher thread does after any exit
        #expect(ProcStat.read(pid: process.pid)?.isZombie == true, "the sweep left it to its waiter")
        let status = await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd)
        #expect(status == .exited(code: 3))
        #expect(ProcStat.read(pid: process.pid) == nil, "its waiter reaped it")
    }

    /// Outside a subreaper (this test process) the sweep does nothing: the zombie children
    /// here are Foundation's, and reaping them would steal their exit statuses.
    @Test func onlyASubreaperSweeps() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sh", "-c", "exit 5"])
        ChildClaims.release(process.pid)
        #expect(await waitUntil(timeout: .seconds(5)) { ProcStat.read(pid: process.pid)?.isZombie == true })
        ExitWatcher.shared.reapOrphans()
        #expect(ProcStat.read(pid: process.pid)?.isZombie == true, "left to whoever started it")
    }

    /// A zombie child that is no spawned engine (a grandchild reparented to the daemon) is
    /// reaped by the sweep.
    @Test func theSweepReapsAZombieNobodyClaims() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sh", "-c", "exit 4"])
        ChildClaims.release(process.pid)  // as if it were an orphan adopted as subreaper
        #expect(
            await waitUntil(timeout: .seconds(5)) {
                ExitWatcher.shared.sweep()
                return ProcStat.read(pid: process.pid) == nil
            })
    }

    /// The status is the first waiter's: the process is reaped then, and a later watch of
    /// the same pidfd learns only that it is gone.
    @Test func anExitIsReportedOnce() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sh", "-c", "sleep 0.5; exit 3"])
        #expect(await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) == .exited(code: 3))
        #expect(await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) == .unknown)
    }

    @Test func aWaiterOfAProcessStillRunningWaits() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sleep", "30"])
        let exit = Task { await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(isRunning(process.pid), "nothing ended it")
        kill(process.pid, SIGTERM)
        #expect(await exit.value == .signaled(signal: SIGTERM))
    }

    /// A descriptor epoll cannot watch (closed, or never a pidfd) must not hang its waiter.
    @Test func aDescriptorThatCannotBeWatchedEndsTheWaitAtOnce() async {
        #expect(await ExitWatcher.shared.waitForExit(pid: 999_999, pidfd: -1) == .unknown)
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        close(fd)
        #expect(await ExitWatcher.shared.waitForExit(pid: 999_999, pidfd: fd) == .unknown)
    }
}
