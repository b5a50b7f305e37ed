import AgentronCore
import AgentronEngines
import AgentronProcess
import Glibc

/// What the Supervisor needs of the operating system, as one seam: spawning and
/// re-adopting processes, watching their exits, walking and killing their trees, looking at
/// ports, and the clock. The daemon uses `SystemEngineHost`; the Supervisor's tests use fakes
/// that run in milliseconds without a process (Tests/AgentronDaemonTests/SupervisorTests).
protocol EngineHost: Sendable {
    // Spawning
    func spawn(_ launch: LaunchSpec, logPath: String, cgroup: EngineCgroup?) throws(SpawnError) -> EngineProcess
    /// A process found again after a daemon restart, if it is still the same one.
    func adopt(pid: Int32, startTime: UInt64) -> EngineProcess?
    /// Gives up the handle on a process that is gone.
    func release(_ process: EngineProcess)

    // Exit watching
    func waitForExit(_ process: EngineProcess) async -> ExitStatus

    // Process trees
    func tree(leader: Int32, known: [Int32: UInt64], cgroup: EngineCgroup?) -> any EngineTree
    /// Kills what is left of an engine that died while the daemon was away.
    func killRemnants(known: [Int32: UInt64], cgroup: EngineCgroup?) async -> [Int32]

    // Ports
    func isFree(host: String, port: Int) -> Bool
    /// Who holds `port` ("pid 123 (ollama)"), for messages.
    func holder(ofPort port: Int) -> String?
    func ownership(ofPort port: Int, host: String, check: Ports.ListenerCheck, members: () -> [Int32])
        -> Ports.Ownership

    // The clock
    var clock: any SupervisorClock { get }
}

/// One engine's processes: its session and group, its descendants, its cgroup.
protocol EngineTree: Sendable {
    /// pid → start time of every descendant seen, kept in the state file.
    var known: [Int32: UInt64] { get }
    var cgroup: EngineCgroup? { get }
    /// Remembers the current members (a helper that leaves the session is still found).
    mutating func refresh()
    func memberPIDs() -> [Int32]
    /// SIGTERM, up to `grace`, SIGKILL to everything left.
    mutating func terminate(grace: Duration, pidfd: Int32?) async -> ProcessTree.TerminationReport
}

/// Monotonic time for the Supervisor's timers: probe intervals, deadlines, backoff.
protocol SupervisorClock: Sendable {
    /// Seconds on a monotonic clock.
    var now: Double { get }
    func sleep(for duration: Duration) async throws
}

/// The real operating system.
struct SystemEngineHost: EngineHost {
    func spawn(_ launch: LaunchSpec, logPath: String, cgroup: EngineCgroup?) throws(SpawnError) -> EngineProcess {
        try Spawner.spawn(
            arguments: launch.arguments, environment: launch.environment, logPath: logPath, cgroup: cgroup)
    }

    func adopt(pid: Int32, startTime: UInt64) -> EngineProcess? {
        EngineProcess.adopt(pid: pid, startTime: startTime)
    }

    func release(_ process: EngineProcess) {
        if process.pidfd >= 0 { close(process.pidfd) }
    }

    func waitForExit(_ process: EngineProcess) async -> ExitStatus {
        await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd)
    }

    func tree(leader: Int32, known: [Int32: UInt64], cgroup: EngineCgroup?) -> any EngineTree {
        ProcessTree(leader: leader, known: known, cgroup: cgroup)
    }

    func killRemnants(known: [Int32: UInt64], cgroup: EngineCgroup?) async -> [Int32] {
        await ProcessTree.killRemnants(known: known, cgroup: cgroup)
    }

    func isFree(host: String, port: Int) -> Bool {
        Ports.isFree(host: host, port: port)
    }

    func holder(ofPort port: Int) -> String? {
        Ports.holder(ofPort: port)
    }

    func ownership(ofPort port: Int, host: String, check: Ports.ListenerCheck, members: () -> [Int32])
        -> Ports.Ownership
    {
        Ports.ownership(ofPort: port, host: host, check: check, members: members)
    }

    var clock: any SupervisorClock { MonotonicClock() }
}

extension ProcessTree: EngineTree {
    func memberPIDs() -> [Int32] { currentMembers().map(\.pid) }
}

struct MonotonicClock: SupervisorClock {
    var now: Double { Monotonic.now }

    func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// Seconds on a monotonic clock, for the state machine's windows and timers.
enum Monotonic {
    static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

/// Wall-clock seconds since the epoch, for what users read (`since`, history).
enum UnixTime {
    static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
