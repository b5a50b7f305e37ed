import AgentronCore
import AgentronEngines
import AgentronProcess
import Logging

/// Runs one server: the executor of its state machine. It decides nothing about the
/// lifecycle: every command (`up`, `down`, `restart`, shutdown, a blocked start) and every
/// report (spawned, probe results, exits) becomes an event of `ServerStateMachine`, and the
/// Supervisor performs the actions the machine returns (docs/state-machine.md).
///
/// The actor is the server's one owner loop: events are handled one at a time, synchronously
/// (feed the machine, perform its actions), so nothing is checked across an `await`. Slow
/// work (probes, exit watching, termination, backoff timers) runs in tasks that report back
/// as events tagged with the run they belong to; a report for an earlier run is dropped.
///
/// Files: this one holds the commands and the event loop; Supervisor+Engine.swift spawns,
/// attaches, terminates and restores engines; Supervisor+Probes.swift probes them. The
/// operating system is reached only through `EngineHost`, so tests run it against fakes.
actor Supervisor {
    let name: String
    var profile: Profile
    var machine: ServerStateMachine
    let driver: any EngineDriver
    let host: any EngineHost
    let clock: any SupervisorClock
    let logFiles: LogFiles
    let daemonEnvironment: [String: String]
    /// Where engines get their own cgroup; nil when the daemon cannot create cgroups.
    let cgroups: Cgroups?
    /// Auto ports handed out daemon-wide, so no two servers get one port (issue #10).
    let ports: PortTable
    /// The daemon's random identity (DaemonIdentity): names and labels what this daemon
    /// owns (containers).
    let instance: String
    /// The daemon's state directory, handed to drivers (Ollama's model store without HOME).
    let stateDirectory: String
    let logger: Logger
    /// Called after every state change (the registry persists state).
    private let onChange: @Sendable () async -> Void

    /// Incremented on every spawn or attach; a task's report for another run is stale.
    var run = 0
    var process: EngineProcess?
    var tree: (any EngineTree)?
    var port: Int?
    /// The exit of this run's engine process, as the watcher will report it.
    var exitTask: Task<ExitStatus, Never>?
    var processStartedAt: Double?
    var probeTask: Task<Void, Never>?
    var restartTask: Task<Void, Never>?
    /// The profile the last start request carried; the machine's `applyProfile` adopts it.
    private var requestedProfile: Profile?
    /// What a restored server left behind, for `killRemnants`.
    var remnants: (known: [Int32: UInt64], cgroup: EngineCgroup?) = ([:], nil)
    /// Everyone waiting for the server to settle, by id so a waiter's timeout releases
    /// only that waiter.
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiterID = 0
    private var since = UnixTime.now
    var history: [StateChange] = []
    var probes: [ProbeResult] = []
    private var lastFailedStartTail: [String]?
    var progress: EngineProgress?
    var lastTreeRefresh = 0.0
    /// An auto port the last engine found taken: the next pick avoids it.
    var lostPort: Int?
    /// The log's size when this run's engine was started: what it printed comes after.
    var logOffsetAtSpawn = 0
    /// The run whose listener was seen to be the engine's own (Supervisor+Probes.swift).
    var listenerConfirmedRun: Int?

    /// How much `inspect` keeps.
    static let historyLimit = 50
    static let probeHistoryLimit = 20
    /// How many log lines a failed start reports.
    static let failureTailLines = 20

    init(
        profile: Profile, driver: any EngineDriver, logDirectory: String, daemonEnvironment: [String: String],
        cgroups: Cgroups?, ports: PortTable, instance: String, stateDirectory: String = "", logger: Logger,
        host: any EngineHost = SystemEngineHost(), onChange: @escaping @Sendable () async -> Void
    ) {
        self.ports = ports
        self.name = profile.name
        self.profile = profile
        self.machine = ServerStateMachine(profile: profile)
        self.driver = driver
        self.host = host
        self.clock = host.clock
        self.logFiles = LogFiles(directory: logDirectory, name: profile.name)
        self.daemonEnvironment = daemonEnvironment
        self.cgroups = cgroups
        self.instance = instance
        self.stateDirectory = stateDirectory
        var logger = logger
        logger[metadataKey: "server"] = "\(profile.name)"
        logger[metadataKey: "engine"] = "\(profile.engine.rawValue)"
        self.logger = logger
        self.onChange = onChange
    }

    var state: ServerState { machine.state }
    /// Whether the user wants this server running (the machine's `wanted`).
    var wanted: Bool { machine.wanted }
    /// Whether the daemon starts this server as it starts (the machine's `startsAtBoot`).
    var startsAtBoot: Bool { machine.startsAtBoot }

    func context(port: Int) -> EngineContext {
        EngineContext(
            profile: profile, port: port, daemonEnvironment: daemonEnvironment, instance: instance,
            stateDirectory: stateDirectory)
    }

    // MARK: Commands

    /// `up` (the registry has checked it may): a server with no engine takes the new spec.
    func start(profile newProfile: Profile) {
        requestedProfile = newProfile
        lastFailedStartTail = nil
        handle { $0.startRequested(profile: newProfile, now: $1) }
    }

    func stop() {
        handle { machine, _ in machine.stopRequested() }
    }

    /// A start that cannot even be attempted (the GPU devices never appeared): shown as a
    /// failed start with `reason`.
    func failStart(reason: String) {
        handle { $0.startBlocked(reason: reason, now: $1) }
    }

    /// `agentron restart`: stop what runs, then start again with the same spec, as one event.
    func restart() {
        lastFailedStartTail = nil
        handle { $0.restartRequested(now: $1) }
    }

    /// The gateway's traffic for this server; the machine decides whether it is idle.
    func checkIdle(_ activity: GatewayActivity.Server) {
        handle { $0.idleCheck(inFlight: activity.inFlight, lastActivity: activity.lastEnded, now: $1) }
    }

    /// Another member of this server's group is starting.
    func preempt(by other: String, group: String) {
        handle { machine, _ in machine.preempted(by: other, group: group) }
    }

    func shutdown() {
        handle { machine, _ in machine.shutdownRequested() }
    }

    /// `down --timeout` overrides the profile's grace for this stop only.
    func overrideStopTimeout(_ timeout: TimeSpan) {
        machine.overrideStopGrace(timeout)
    }

    /// Returns once the server is in a settled state (ready, stopped, failed) or `timeout`
    /// passed, whichever is first.
    func waitUntilSettled(timeout: Duration) async {
        guard !machine.state.isSettled else { return }
        nextWaiterID += 1
        let id = nextWaiterID
        let clock = self.clock
        let timer = Task {
            try? await clock.sleep(for: timeout)
            self.releaseWaiter(id)
        }
        await withCheckedContinuation { waiters[id] = $0 }
        timer.cancel()
    }

    /// Returns once no engine runs (stopped or failed); used after `stop` and `shutdown`.
    /// Also returns if a concurrent `up` brought the server back to ready meanwhile.
    func waitUntilDown() async {
        while machine.state != .stopped && machine.state != .failed && machine.state != .ready {
            await waitUntilSettled(timeout: .seconds(3600))
        }
    }

    // MARK: What it shows

    func info(detailed: Bool) -> ServerInfo {
        let endpoint = port.map { context(port: $0).baseURL }
        var info = ServerInfo(
            name: name, engine: profile.engine, model: profile.model, servedModel: driver.servedModelName(profile),
            endpoint: endpoint, port: port, state: machine.state, reason: machine.reason,
            pid: machine.state.hasProcess ? process?.pid : nil,
            startedAt: machine.state.hasProcess ? processStartedAt : nil,
            since: since, restarts: machine.totalRestarts, lastExit: machine.lastExit,
            lastLogLine: machine.state == .starting ? logFiles.lastLine().map(profile.redact) : nil
        )
        if machine.state == .starting { info.progress = progress }
        if machine.state == .failed {
            info.logTail = (lastFailedStartTail ?? logFiles.tail(lines: Self.failureTailLines)).map(profile.redact)
        }
        if detailed {
            info.profile = profile.redacted
            info.history = history
            info.probes = probes
        }
        return info
    }

    var logs: LogFiles { logFiles }

    var record: StateStore.Record {
        StateStore.Record(
            profile: profile, state: machine.state, reason: machine.reason, pid: process?.pid,
            processStartTime: process?.startTime, startedAt: processStartedAt, port: port,
            restartCount: machine.restartCount, restarts: machine.totalRestarts, wanted: machine.wanted,
            cgroup: tree?.cgroup?.path,
            descendants: tree?.known.map { StateStore.Descendant(pid: $0.key, startTime: $0.value) })
    }

    // MARK: The event loop

    /// Feeds one event to the machine (with the current time) and performs what it returns.
    func handle(_ event: (inout ServerStateMachine, Double) -> [ServerStateMachine.Action]) {
        let before = machine.state
        let beforeReason = machine.reason
        let actions = event(&machine, clock.now)
        if machine.state != before || machine.reason != beforeReason {
            recordChange(from: before)
        }
        for action in actions { perform(action) }
    }

    func recordChange(from before: ServerState, note: String? = nil) {
        since = UnixTime.now
        history.append(StateChange(at: since, state: machine.state, reason: note ?? machine.reason))
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
        if machine.state != before {
            var line = "state \(before.rawValue) → \(machine.state.rawValue)"
            if let reason = machine.reason { line += ": \(reason)" }
            let metadata: Logger.Metadata = ["state": "\(machine.state.rawValue)"]
            machine.state == .failed
                ? logger.error("\(line)", metadata: metadata) : logger.info("\(line)", metadata: metadata)
        }
        if machine.state == .failed { lastFailedStartTail = logFiles.tail(lines: Self.failureTailLines) }
        let onChange = self.onChange
        Task { await onChange() }
    }

    private func perform(_ action: ServerStateMachine.Action) {
        switch action {
        case .applyProfile:
            if let requestedProfile { profile = requestedProfile }
        case .spawn: spawn()
        case .attach: attach()
        case .startStartupProbes: startStartupProbes()
        case .startLivenessProbes: startLivenessProbes()
        case .terminate(let grace): terminate(grace: grace.duration)
        case .release: releaseAttached()
        case .reapRemnants: reapRemnants()
        case .killRemnants: killRemnants()
        case .noteLostPort: noteLostPort()
        case .scheduleRestart(let delay): scheduleRestart(after: delay.duration)
        case .cancelRestart:
            restartTask?.cancel()
            restartTask = nil
        case .resolveWaiters: releaseWaiters()
        }
    }

    private func releaseWaiters() {
        let waiting = waiters
        waiters = [:]
        for waiter in waiting.values { waiter.resume() }
    }

    private func releaseWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume()
    }

    private func scheduleRestart(after delay: Duration) {
        restartTask?.cancel()
        logger.info("restarting after backoff", metadata: ["delay": "\(TimeSpan(seconds: delay.seconds))"])
        let clock = self.clock
        restartTask = Task { [weak self] in
            if delay > .zero {
                do { try await clock.sleep(for: delay) } catch { return }
            }
            await self?.backoffElapsed()
        }
    }

    private func backoffElapsed() {
        restartTask = nil
        handle { $0.backoffElapsed(now: $1) }
    }
}
