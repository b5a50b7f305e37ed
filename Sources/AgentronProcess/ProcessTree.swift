import CProcessShims
import Glibc

/// Everything that belongs to one engine: its session and process group (it leads both),
/// every descendant reachable by parent links, and the descendants seen earlier that have
/// since left the session (setsid) and may have been reparented to the daemon.
///
/// Nothing outlives `down` (docs/state-machine.md): vLLM's EngineCore and workers survive a killed API
/// server and keep the GPU; this is what finds and kills them.
public struct ProcessTree: Sendable, Equatable {
    public let leader: Int32
    /// pid → start time of every descendant ever seen, so a reused pid is never killed.
    public private(set) var known: [Int32: UInt64] = [:]
    /// The engine's cgroup, when the daemon could create one: every process in it belongs
    /// to the engine, and `cgroup.kill` ends them all.
    public let cgroup: EngineCgroup?

    public init(leader: Int32, known: [Int32: UInt64] = [:], cgroup: EngineCgroup? = nil) {
        self.leader = leader
        self.known = known
        self.cgroup = cgroup
    }

    /// Records the tree's current members so a helper that escaped the session is still
    /// remembered after its parent died; the supervisor calls it now and then. With a cgroup
    /// there is nothing to remember: the cgroup holds every descendant.
    public mutating func refresh() {
        _ = refreshMembers()
    }

    /// `refresh`, returning the live members it found (nil with a cgroup, which needs no
    /// remembering), so a caller that wants both pays for one scan of /proc, not two.
    mutating func refreshMembers() -> [ProcStat]? {
        guard cgroup == nil else { return nil }
        let table = ProcStat.all()
        let found = members(in: table)
        for member in found { known[member.pid] = member.startTime }
        // Forget the dead, so the map does not grow for ever with short-lived helpers.
        let alive = Dictionary(table.map { ($0.pid, $0.startTime) }, uniquingKeysWith: { first, _ in first })
        known = known.filter { alive[$0.key] == $0.value }
        return found
    }

    /// The tree's live members now. With a cgroup that is its member list (cheap: no scan of
    /// /proc); otherwise a scan of /proc by session, group, parent links and memory.
    public func currentMembers() -> [ProcStat] {
        if let cgroup, cgroup.exists {
            let me = getpid()
            var pids = Set(cgroup.pids)
            pids.insert(leader)
            return pids.compactMap { pid in
                guard pid != me, let stat = ProcStat.read(pid: pid), !stat.isZombie else { return nil }
                // The leader counts only while it is still the process we started.
                if pid == leader, stat.session != leader { return nil }
                return stat
            }
        }
        return members(in: ProcStat.all())
    }

    /// Live (non-zombie) processes of this tree in `table`, the leader included.
    public func members(in table: [ProcStat]) -> [ProcStat] {
        let me = getpid()
        let descendants = Set(ProcStat.descendants(of: leader, in: table).map(\.pid))
        let inCgroup = Set(cgroup?.pids ?? [])
        return table.filter { process in
            guard process.pid != me, !process.isZombie else { return false }
            return process.pid == leader || process.session == leader || process.pgrp == leader
                || descendants.contains(process.pid) || known[process.pid] == process.startTime
                || inCgroup.contains(process.pid)
        }
    }

    public struct TerminationReport: Sendable, Equatable {
        /// Processes still running after SIGTERM and the grace period, killed with SIGKILL.
        public var killed: [Int32]
        /// Processes that could not be killed (should always be empty).
        public var leftovers: [Int32]

        public init(killed: [Int32], leftovers: [Int32]) {
            self.killed = killed
            self.leftovers = leftovers
        }
    }

    /// How often stop checks whether the tree is gone. Short, so `down` returns promptly.
    public static let pollInterval: Duration = .milliseconds(20)
    /// The first check comes this soon and the pause doubles up to `pollInterval`: most
    /// engines are gone within a millisecond or two of the signal, and a restart waits for
    /// the old tree (a fixed 20 ms first pause was most of a crash's restart time, issue #14).
    static let firstPoll: Duration = .milliseconds(1)
    /// Sleeps `pause`, then doubles it up to `pollInterval`: the waits of a stop.
    static func pause(_ pause: inout Duration) async {
        try? await Task.sleep(for: pause)
        pause = min(pause * 2, pollInterval)
    }

    /// How long SIGKILL may take to clear the tree before we give up and report leftovers.
    public static let killTimeout: Duration = .seconds(5)
    /// Once the engine's main process has exited, what is left of its group gets at most
    /// this long before SIGKILL (like Docker, which waits for the container's init only):
    /// Python's resource_tracker ignores SIGTERM, and a `down` must not sit out the whole
    /// 90 s grace for it.
    public static let graceAfterLeaderExit: Duration = .seconds(3)

    /// SIGTERM to the engine's group, up to `grace` for the group to exit, then SIGKILL to
    /// everything left of the tree, including processes that left the group or session.
    public mutating func terminate(grace: Duration, pidfd: Int32?) async -> TerminationReport {
        let members = refreshMembers()
        if let members, members.isEmpty {
            // Nothing of the tree is alive (a crash took it all down), so nothing can have
            // forked since the scan: no signal to send, nothing to wait for or scan again
            // (the second scan of /proc was most of a restart's time without cgroups).
            known = [:]
            ExitWatcher.shared.reapOrphans()
            return TerminationReport(killed: [], leftovers: [])
        }
        if let pidfd, pidfd >= 0 { _ = agentron_pidfd_send_signal(pidfd, SIGTERM) }
        kill(-leader, SIGTERM)

        let clock = ContinuousClock()
        var graceEnd = clock.now.advanced(by: grace)
        // Wait for the group (and the leader) to go; escaped helpers get no say in how long
        // `down` takes: they are SIGKILLed right after.
        var waiting = (members ?? currentMembers()).filter {
            $0.pgrp == leader || $0.pid == leader || $0.session == leader
        }
        var leaderGone = false
        var pause = Self.firstPoll
        while !waiting.isEmpty, clock.now < graceEnd {
            await Self.pause(&pause)
            waiting = waiting.filter { isAlive($0) }
            if !leaderGone, !waiting.contains(where: { $0.pid == leader }) {
                leaderGone = true
                graceEnd = min(graceEnd, clock.now.advanced(by: Self.graceAfterLeaderExit))
            }
        }

        var killed: [Int32] = []
        let killEnd = clock.now.advanced(by: Self.killTimeout)
        var remaining = currentMembers()
        if !remaining.isEmpty, let cgroup {
            // Atomic with respect to forks: nothing in the cgroup can escape it.
            cgroup.kill()
        }
        pause = Self.firstPoll
        while !remaining.isEmpty {
            for process in remaining where isAlive(process) {
                if kill(process.pid, SIGKILL) == 0, !killed.contains(process.pid) { killed.append(process.pid) }
            }
            guard clock.now < killEnd else { break }
            await Self.pause(&pause)
            // A fresh look: something may have forked between the scan and the kill.
            remaining = currentMembers()
        }
        known = [:]
        // Orphans of the tree reparented to the daemon are reaped now, so `down` returns
        // with no zombie left (engines' main processes are left to their exit watchers).
        ExitWatcher.shared.reapOrphans()
        if remaining.isEmpty, let cgroup {
            // Empty now; rmdir can race the kernel's last exit bookkeeping, so retry briefly.
            var attempts = 0
            pause = Self.firstPoll
            while !cgroup.remove(), attempts < 50 {
                attempts += 1
                await Self.pause(&pause)
            }
        }
        return TerminationReport(killed: killed, leftovers: remaining.map(\.pid))
    }

    /// SIGKILL to what is left of an engine whose main process is already gone and was not
    /// our child (found dead after a daemon restart): only processes we can prove were its
    /// own, by pid + start time or by cgroup. The group is not signalled: its id may have
    /// been reused.
    public static func killRemnants(known: [Int32: UInt64], cgroup: EngineCgroup?) async -> [Int32] {
        var killed: [Int32] = []
        for (pid, start) in known {
            if let stat = ProcStat.read(pid: pid), stat.startTime == start, !stat.isZombie, kill(pid, SIGKILL) == 0 {
                killed.append(pid)
            }
        }
        if let cgroup, cgroup.exists {
            killed += cgroup.pids
            cgroup.kill()
            var attempts = 0
            while !cgroup.remove(), attempts < 250 {
                attempts += 1
                try? await Task.sleep(for: pollInterval)
            }
        }
        return killed
    }

    private func isAlive(_ process: ProcStat) -> Bool {
        guard let now = ProcStat.read(pid: process.pid) else { return false }
        return now.startTime == process.startTime && !now.isZombie
    }
}
