import CAgentronShims
import Glibc

/// Everything that belongs to one engine: its session and process group (it leads both),
/// every descendant reachable by parent links, and the descendants seen earlier that have
/// since left the session (setsid) and may have been reparented to the daemon.
///
/// Nothing outlives `down` (DESIGN §3): vLLM's EngineCore and workers survive a killed API
/// server and keep the GPU; this is what finds and kills them.
public struct ProcessTree: Sendable, Equatable {
    public let leader: Int32
    /// pid → start time of every descendant ever seen, so a reused pid is never killed.
    public private(set) var known: [Int32: UInt64] = [:]

    public init(leader: Int32, known: [Int32: UInt64] = [:]) {
        self.leader = leader
        self.known = known
    }

    /// Records the tree's current members; call periodically (the supervisor does on each
    /// probe) so a helper that escaped the session is still remembered after its parent died.
    public mutating func refresh(table: [ProcStat] = ProcStat.all()) {
        for member in members(in: table) { known[member.pid] = member.startTime }
        // Forget the dead, so the map does not grow for ever with short-lived helpers.
        let alive = Dictionary(table.map { ($0.pid, $0.startTime) }, uniquingKeysWith: { first, _ in first })
        known = known.filter { alive[$0.key] == $0.value }
    }

    /// Live (non-zombie) processes of this tree in `table`, the leader included.
    public func members(in table: [ProcStat]) -> [ProcStat] {
        let me = getpid()
        let descendants = Set(ProcStat.descendants(of: leader, in: table).map(\.pid))
        return table.filter { process in
            guard process.pid != me, !process.isZombie else { return false }
            return process.pid == leader || process.session == leader || process.pgrp == leader
                || descendants.contains(process.pid) || known[process.pid] == process.startTime
        }
    }

    public struct TerminationReport: Sendable, Equatable {
        /// Processes still running after SIGTERM and the grace period, killed with SIGKILL.
        public var killed: [Int32]
        /// Processes that could not be killed (should always be empty).
        public var leftovers: [Int32]
    }

    /// How often stop checks whether the tree is gone. Short, so `down` returns promptly.
    public static let pollInterval: Duration = .milliseconds(20)
    /// How long SIGKILL may take to clear the tree before we give up and report leftovers.
    public static let killTimeout: Duration = .seconds(5)

    /// SIGTERM to the engine's group, up to `grace` for the group to exit, then SIGKILL to
    /// everything left of the tree, including processes that left the group or session.
    public mutating func terminate(grace: Duration, pidfd: Int32?) async -> TerminationReport {
        refresh()
        if let pidfd, pidfd >= 0 { _ = agentron_pidfd_send_signal(pidfd, SIGTERM) }
        kill(-leader, SIGTERM)

        let clock = ContinuousClock()
        let graceEnd = clock.now.advanced(by: grace)
        // Wait for the group (and the leader) to go; escaped helpers get no say in how long
        // `down` takes: they are SIGKILLed right after.
        var waiting = members(in: ProcStat.all()).filter { $0.pgrp == leader || $0.pid == leader || $0.session == leader }
        while !waiting.isEmpty, clock.now < graceEnd {
            try? await Task.sleep(for: Self.pollInterval)
            waiting = waiting.filter { isAlive($0) }
        }

        var killed: [Int32] = []
        let killEnd = clock.now.advanced(by: Self.killTimeout)
        var remaining = members(in: ProcStat.all())
        while !remaining.isEmpty {
            for process in remaining where isAlive(process) {
                if kill(process.pid, SIGKILL) == 0, !killed.contains(process.pid) { killed.append(process.pid) }
            }
            guard clock.now < killEnd else { break }
            try? await Task.sleep(for: Self.pollInterval)
            // A full rescan: something may have forked between the scan and the kill.
            remaining = members(in: ProcStat.all())
        }
        known = [:]
        return TerminationReport(killed: killed, leftovers: remaining.map(\.pid))
    }

    private func isAlive(_ process: ProcStat) -> Bool {
        guard let now = ProcStat.read(pid: process.pid) else { return false }
        return now.startTime == process.startTime && !now.isZombie
    }
}
