import AgentronCore
import AgentronEngines
import AgentronProcess
import Glibc
import Synchronization

@testable import AgentronDaemon

/// The operating system as the Supervisor sees it, without a process: spawns hand out
/// made-up pids, exits happen when a test says so (or when a fake tree is terminated), and
/// time runs `scale` times faster than the wall clock.
final class FakeEngineHost: EngineHost, Sendable {
    struct State {
        var nextPID: Int32 = 900_000
        var spawned: [Int32] = []
        var launches: [LaunchSpec] = []
        var exited: [Int32: ExitStatus] = [:]
        var waiting: [Int32: [CheckedContinuation<ExitStatus, Never>]] = [:]
        /// SIGTERMs sent through terminate, by pid.
        var terminated: [Int32] = []
        /// Processes `adopt` finds alive after a "daemon restart".
        var adoptable: Set<Int32> = []
        var remnantsKilled: [[Int32: UInt64]] = []
        var takenPorts: Set<Int> = []
        /// Engines that ignore SIGTERM: terminate waits the grace, then SIGKILLs.
        var ignoreSIGTERM = false
        var spawnError: SpawnError?
    }

    let state = Mutex(State())
    let fastClock: FastClock

    init(scale: Double = 100) {
        fastClock = FastClock(scale: scale)
    }

    var clock: any SupervisorClock { fastClock }

    var spawnCount: Int { state.withLock { $0.spawned.count } }
    var lastPID: Int32? { state.withLock { $0.spawned.last } }
    var terminated: [Int32] { state.withLock { $0.terminated } }

    /// The engine process `pid` ends with `status`.
    func exit(_ pid: Int32, _ status: ExitStatus) {
        let waiters = state.withLock { state -> [CheckedContinuation<ExitStatus, Never>] in
            guard state.exited[pid] == nil else { return [] }
            state.exited[pid] = status
            return state.waiting.removeValue(forKey: pid) ?? []
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func hasExited(_ pid: Int32) -> Bool { state.withLock { $0.exited[pid] != nil } }

    // MARK: EngineHost

    func spawn(_ launch: LaunchSpec, logPath: String, cgroup: EngineCgroup?) throws(SpawnError) -> EngineProcess {
        let result: Result<Int32, SpawnError> = state.withLock { state in
            if let error = state.spawnError { return .failure(error) }
            state.nextPID += 1
            state.spawned.append(state.nextPID)
            state.launches.append(launch)
            return .success(state.nextPID)
        }
        let pid = try result.get()
        return EngineProcess(pid: pid, pidfd: -1, startTime: UInt64(pid))
    }

    func adopt(pid: Int32, startTime: UInt64) -> EngineProcess? {
        state.withLock { $0.adoptable.contains(pid) } ? EngineProcess(pid: pid, pidfd: -1, startTime: startTime) : nil
    }

    func release(_ process: EngineProcess) {}

    func waitForExit(_ process: EngineProcess) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> ExitStatus? in
                if let status = state.exited[process.pid] { return status }
                state.waiting[process.pid, default: []].append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    func tree(leader: Int32, known: [Int32: UInt64], cgroup: EngineCgroup?) -> any EngineTree {
        FakeTree(host: self, leader: leader, known: known)
    }

    func killRemnants(known: [Int32: UInt64], cgroup: EngineCgroup?) async -> [Int32] {
        state.withLock { $0.remnantsKilled.append(known) }
        return Array(known.keys)
    }

    func isFree(host: String, port: Int) -> Bool { !state.withLock { $0.takenPorts.contains(port) } }
    func holder(ofPort port: Int) -> String? { nil }
    func ownership(ofPort port: Int, host: String, check: Ports.ListenerCheck, members: () -> [Int32])
        -> Ports.Ownership
    { .ours }
}

struct FakeTree: EngineTree {
    let host: FakeEngineHost
    let leader: Int32
    var known: [Int32: UInt64]
    var cgroup: EngineCgroup? { nil }

    mutating func refresh() {}
    func memberPIDs() -> [Int32] { host.hasExited(leader) ? [] : [leader] }

    mutating func terminate(grace: Duration, pidfd: Int32?) async -> ProcessTree.TerminationReport {
        guard !host.hasExited(leader) else { return .init(killed: [], leftovers: []) }
        host.state.withLock { $0.terminated.append(leader) }
        if host.state.withLock({ $0.ignoreSIGTERM }) {
            try? await host.fastClock.sleep(for: grace)
            host.exit(leader, .signaled(signal: SIGKILL))
            return .init(killed: [leader], leftovers: [])
        }
        host.exit(leader, .signaled(signal: SIGTERM))
        return .init(killed: [], leftovers: [])
    }
}

/// Monotonic time, `scale` times faster: a 1 s backoff takes 10 ms at the default scale.
struct FastClock: SupervisorClock {
    let scale: Double
    var now: Double { Monotonic.now * scale }

    func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration / scale)
    }
}

/// A driver whose probes answer what the test says; `readiness` and `liveness` get the
/// number of the probe (from 1) and the pid of the current engine.
final class FakeDriver: EngineDriver, Sendable {
    let kind = EngineKind.command
    let displayName = "fake"
    let program = "fake"
    let installHint = "it is a fake"
    let modelExample = "m"
    let modelDescription = "a made-up model"
    let probeLog = Mutex<[String]>([])
    private let readinessCount = Atomic<Int>(0)
    private let livenessCount = Atomic<Int>(0)
    let readiness: @Sendable (Int) -> ProbeOutcome
    let liveness: @Sendable (Int) -> ProbeOutcome
    var listenerCheck: Ports.ListenerCheck { .none }

    init(
        readiness: @escaping @Sendable (Int) -> ProbeOutcome = { _ in .passed("200") },
        liveness: @escaping @Sendable (Int) -> ProbeOutcome = { _ in .passed("200") }
    ) {
        self.readiness = readiness
        self.liveness = liveness
    }

    func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        LaunchSpec(arguments: ["fake", "--port", "\(context.port)"], environment: [:])
    }

    func probePaths(_ profile: Profile) -> ProbePaths {
        ProbePaths(readiness: ["/health"], liveness: "/health")
    }

    func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        readiness(readinessCount.add(1, ordering: .relaxed).newValue)
    }

    func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        liveness(livenessCount.add(1, ordering: .relaxed).newValue)
    }

    func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer {
        throw .unsupported(engine: kind, what: "a cluster")
    }
}
