import AgentronCore
import AgentronEngines
import AgentronProcess
import Glibc
import Logging

/// Owns one server: its state machine, its engine process and the tasks that probe and
/// watch it. Every event is handled synchronously on the actor (feed the machine, perform
/// the actions it returns), so no state is checked across an `await` (docs/conventions.md rule 4).
/// Async work (probes, exit watching, termination, backoff timers) runs in tasks that
/// report back as events tagged with the run they belong to; stale reports are dropped.
actor Supervisor {
    let name: String
    private(set) var profile: Profile
    private var machine: ServerStateMachine
    private let driver: any EngineDriver
    private let logFiles: LogFiles
    private let daemonEnvironment: [String: String]
    /// Where engines get their own cgroup; nil when the daemon cannot create cgroups.
    private let cgroups: Cgroups?
    /// Auto ports handed out daemon-wide, so no two servers get one port (issue #10).
    private let ports: PortTable
    /// The daemon's random identity (DaemonIdentity): names and labels what this daemon
    /// owns (containers).
    private let instance: String
    /// The daemon's state directory, handed to drivers (Ollama's model store without HOME).
    private let stateDirectory: String
    private let logger: Logger
    /// Called after every state change (the registry persists state).
    private let onChange: @Sendable () async -> Void

    /// Incremented on every spawn; a task's report for another run is stale.
    private var run = 0
    private var process: EngineProcess?
    private var tree: ProcessTree?
    private var port: Int?
    private var exitTask: Task<ExitStatus, Never>?
    private var terminating = false
    private var probeTask: Task<Void, Never>?
    private var restartTask: Task<Void, Never>?
    /// Everyone waiting for the server to settle, by id so a waiter's timeout releases
    /// only that waiter.
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiterID = 0
    private var since = UnixTime.now
    private var history: [StateChange] = []
    private var probes: [ProbeResult] = []
    private var lastFailedStartTail: [String]?
    private var progress: EngineProgress?
    private var lastTreeRefresh = 0.0
    /// An auto port the last engine found taken: the next pick avoids it.
    private var lostPort: Int?
    /// The log's size when this run's engine was started: what it printed comes after.
    private var logOffsetAtSpawn = 0

    /// How much `inspect` keeps.
    static let historyLimit = 50
    static let probeHistoryLimit = 20
    /// Startup probes start fast (an engine can be ready in tens of milliseconds) and ease
    /// to about a second for engines that load for minutes (docs/state-machine.md, issue #3).
    static let startupProbeFirstInterval: Duration = .milliseconds(25)
    static let startupProbeMaxInterval: Duration = .seconds(1)
    static let startupProbeGrowth = 1.25
    /// Per-attempt bound of a startup probe: a loading engine that accepted the connection
    /// but answers slowly must not stall the probe loop for the whole startup timeout.
    static let startupProbeTimeout: Duration = .seconds(5)
    /// After an engine's main process dies by itself, what is left of its tree (vLLM's
    /// EngineCore holding the GPU) gets this long after SIGTERM before SIGKILL.
    static let orphanGrace: Duration = .seconds(5)
    /// How many log lines a failed start reports.
    static let failureTailLines = 20
    /// How often, at most, the process tree is rescanned (sessions path only).
    static let treeRefreshInterval: Duration = .seconds(15)
    /// Between startup probes the engine's log is watched this often: a new line (vLLM's
    /// "Application startup complete" comes as it starts listening) triggers a probe at
    /// once, so readiness is seen within about this long instead of a whole probe interval.
    static let startupLogWatchInterval: Duration = .milliseconds(25)

    init(profile: Profile, driver: any EngineDriver, logDirectory: String, daemonEnvironment: [String: String],
         cgroups: Cgroups?, ports: PortTable, instance: String, stateDirectory: String = "", logger: Logger,
         onChange: @escaping @Sendable () async -> Void) {
        self.ports = ports
        self.name = profile.name
        self.profile = profile
        self.machine = ServerStateMachine(profile: profile)
        self.driver = driver
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

    private func context(port: Int) -> EngineContext {
        EngineContext(profile: profile, port: port, daemonEnvironment: daemonEnvironment, instance: instance,
            stateDirectory: stateDirectory)
    }

    // MARK: Requests

    /// Whether the user wants this server running: set by `up` and `restart`, cleared by
    /// `down`, untouched by the daemon's own shutdown. A server wanted when the daemon
    /// stopped starts again when it starts (issue #6: boot).
    private(set) var wanted = false

    /// Starts the server with `newProfile` (the registry has checked it may).
    func start(profile newProfile: Profile) {
        wanted = true
        if !machine.state.hasProcess && machine.state != .backoff {
            // A new `up` of a stopped or failed server may carry a new spec.
            profile = newProfile
            machine = ServerStateMachine(profile: newProfile)
        }
        lastFailedStartTail = nil
        handle { $0.startRequested(now: Monotonic.now) }
    }

    func stop() {
        wanted = false
        handle { $0.stopRequested() }
    }

    /// A start that cannot even be attempted (the GPU devices never appeared): shown as a
    /// failed start with `reason`.
    func failStart(reason: String) {
        wanted = true
        handle { machine in
            var actions = machine.startRequested(now: Monotonic.now).filter { $0 != .spawn }
            actions += machine.spawnFailed(reason: reason, now: Monotonic.now)
            return actions
        }
    }

    /// `agentron restart`: stop what runs (waiting until it is gone), then start again.
    func restart() async {
        if machine.state.hasProcess || machine.state == .backoff {
            handle { $0.stopRequested() }
            await waitUntilDown()
        }
        start(profile: profile)
    }

    func shutdown() {
        handle { $0.shutdownRequested() }
    }

    /// Returns once the server is in a settled state (ready, stopped, failed) or `timeout`
    /// passed, whichever is first.
    func waitUntilSettled(timeout: Duration) async {
        guard !machine.state.isSettled else { return }
        nextWaiterID += 1
        let id = nextWaiterID
        let timer = Task {
            try? await Task.sleep(for: timeout)
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

    /// `down --timeout` overrides the profile's grace for this stop only.
    func overrideStopTimeout(_ timeout: TimeSpan) {
        machine.overrideStopGrace(timeout)
    }

    var record: StateStore.Record {
        StateStore.Record(
            profile: profile, state: machine.state, reason: machine.reason, pid: process?.pid,
            processStartTime: process?.startTime, startedAt: processStartedAt, port: port,
            restartCount: machine.restartCount, restarts: machine.totalRestarts, wanted: wanted,
            cgroup: tree?.cgroup?.path, descendants: tree?.known.map { StateStore.Descendant(pid: $0.key, startTime: $0.value) })
    }

    // MARK: Live restore

    /// Picks a server up from the state file after a daemon restart (docs/state-machine.md): a live
    /// engine is re-adopted as it is (same pid, counters kept) and watched through a pidfd;
    /// one that died while the daemon was away is cleaned up and restarted by policy.
    func restore(from record: StateStore.Record) async {
        profile = record.profile
        port = record.port
        if let port = record.port, record.profile.port == .auto { ports.hold(port, for: name) }
        wanted = record.wanted ?? record.state.hasProcess
        let now = Monotonic.now
        let cgroup = record.cgroup.map(EngineCgroup.init(path:))
        let known = Dictionary((record.descendants ?? []).map { ($0.pid, $0.startTime) }, uniquingKeysWith: { a, _ in a })
        if record.state.hasProcess, let pid = record.pid, let start = record.processStartTime,
            let adopted = EngineProcess.adopt(pid: pid, startTime: start)
        {
            machine = .adopted(
                profile: profile, state: record.state, restartCount: record.restartCount ?? 0,
                totalRestarts: record.restarts, now: now)
            run += 1
            let run = self.run
            process = adopted
            processStartedAt = record.startedAt
            tree = ProcessTree(leader: pid, known: known, cgroup: cgroup)
            watchExit(of: adopted, run: run)
            recordChange(from: .stopped, note: "re-adopted engine pid \(pid) after a daemon restart")
            logger.info("re-adopted engine", metadata: ["pid": "\(pid)", "state": "\(machine.state.rawValue)"])
            if record.state == .stopping {
                handle { $0.stopRequested() }
            } else if machine.state == .ready {
                startLivenessProbes()
            } else {
                startStartupProbes()
            }
            return
        }
        machine = .restored(
            profile: profile, state: record.state, reason: record.reason, restartCount: record.restartCount ?? 0,
            totalRestarts: record.restarts, now: now)
        if !known.isEmpty || cgroup != nil {
            let killed = await ProcessTree.killRemnants(known: known, cgroup: cgroup)
            if !killed.isEmpty {
                logger.warning("killed what was left of an engine that died while the daemon was away", metadata: ["pids": "\(killed)"])
            }
        }
        if machine.state == .ready {
            // It was running and is gone: a crash, handled by the restart policy.
            recordChange(from: .stopped, note: "engine gone after a daemon restart")
            handle { $0.exited(.unknown, detail: "the engine was gone when the daemon restarted", now: Monotonic.now) }
        }
    }

    private var processStartedAt: Double?

    // MARK: The event loop

    private func handle(_ event: (inout ServerStateMachine) -> [ServerStateMachine.Action]) {
        let before = machine.state
        let beforeReason = machine.reason
        let actions = event(&machine)
        if machine.state != before || machine.reason != beforeReason {
            recordChange(from: before)
        }
        for action in actions { perform(action) }
    }

    private func recordChange(from before: ServerState, note: String? = nil) {
        since = UnixTime.now
        history.append(StateChange(at: since, state: machine.state, reason: note ?? machine.reason))
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
        if machine.state != before {
            var line = "state \(before.rawValue) → \(machine.state.rawValue)"
            if let reason = machine.reason { line += ": \(reason)" }
            let metadata: Logger.Metadata = ["state": "\(machine.state.rawValue)"]
            machine.state == .failed ? logger.error("\(line)", metadata: metadata) : logger.info("\(line)", metadata: metadata)
        }
        if machine.state == .failed { lastFailedStartTail = logFiles.tail(lines: Self.failureTailLines) }
        let onChange = self.onChange
        Task { await onChange() }
    }

    private func perform(_ action: ServerStateMachine.Action) {
        switch action {
        case .spawn: spawn()
        case .startStartupProbes: startStartupProbes()
        case .startLivenessProbes: startLivenessProbes()
        case .terminate(let grace): terminate(grace: grace.duration)
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

    // MARK: Spawning

    private func spawn() {
        run += 1
        let run = self.run
        probeTask?.cancel()
        terminating = false
        external = false
        let port: Int
        switch profile.port {
        case .fixed(let fixed) where profile.adopt == true:
            adoptExternal(port: fixed)
            return
        case .fixed(let fixed):
            guard Ports.isFree(host: profile.host, port: fixed) else {
                let holder = Ports.holder(ofPort: fixed)
                var reason = "port \(fixed) on \(profile.host) is already in use\(holder.map { " by \($0)" } ?? ""); choose another with --port or `port:` in the profile, or use port: auto"
                if let advice = driver.advice(forPortHeldBy: holder) { reason += advice }
                handle { $0.spawnFailed(reason: reason, now: Monotonic.now) }
                return
            }
            port = fixed
        case .auto:
            guard let picked = ports.claim(for: name, host: profile.host, previous: self.port, avoiding: lostPort) else {
                handle { $0.spawnFailed(reason: "no free port on \(profile.host) in \(ports.range) (set \(PortTable.rangeVariable)=LOW-HIGH for another range)", now: Monotonic.now) }
                return
            }
            lostPort = nil
            port = picked
        }
        self.port = port
        let context = context(port: port)
        let spawned: EngineProcess
        var cgroup: EngineCgroup?
        var started = false
        // A failed spawn leaves an empty cgroup behind: remove it.
        defer { if !started { cgroup?.remove() } }
        do {
            let launch = try driver.launch(context)
            logFiles.rotateIfNeeded()
            let shown = Profile.redactArguments(launch.arguments).map(profile.redact)
            appendLogMarker("agentron: starting \(shown.joined(separator: " "))")
            logOffsetAtSpawn = logFiles.currentSize
            cgroup = cgroups?.create(name: name)
            if cgroups != nil && cgroup == nil {
                logger.warning("cannot create a cgroup for the engine; relying on its session alone")
            }
            spawned = try Spawner.spawn(
                arguments: launch.arguments, environment: launch.environment, logPath: logFiles.path, cgroup: cgroup)
        } catch let error as EngineError {
            handle { $0.spawnFailed(reason: "\(error)", now: Monotonic.now) }
            return
        } catch let error as SpawnError {
            let reason: String
            if case .executableNotFound = error {
                reason = "\(error); \(driver.installHint)"
            } else {
                reason = "\(error)"
            }
            handle { $0.spawnFailed(reason: reason, now: Monotonic.now) }
            return
        } catch {
            handle { $0.spawnFailed(reason: "\(error)", now: Monotonic.now) }
            return
        }
        started = true
        logger.info("spawned engine", metadata: ["pid": "\(spawned.pid)", "port": "\(port)"])
        process = spawned
        processStartedAt = UnixTime.now
        tree = ProcessTree(leader: spawned.pid, cgroup: cgroup)
        watchExit(of: spawned, run: run)
        handle { $0.spawned(now: Monotonic.now) }
    }

    // MARK: Adopted (external) engines

    /// True while this run is an engine agentron did not start (`adopt: true`): probed,
    /// prepared and registered, never signalled.
    private var external = false

    /// Uses an engine already answering on `port` (an Ollama system service) as this run.
    private func adoptExternal(port: Int) {
        guard !Ports.isFree(host: profile.host, port: port) else {
            handle { $0.spawnFailed(reason: "nothing listens on \(profile.host):\(port) to adopt; start the engine first, or drop --adopt to let agentron start one", now: Monotonic.now) }
            return
        }
        self.port = port
        external = true
        appendLogMarker("agentron: adopting the engine already answering on \(profile.host):\(port) (not started, and never stopped, by agentron)")
        logger.info("adopting a running engine", metadata: ["port": "\(port)"])
        handle { $0.spawned(now: Monotonic.now) }
    }

    /// Stopping an adopted engine only ends our supervision of it.
    private func releaseExternal(run: Int) {
        guard run == self.run, external else { return }
        external = false
        handle { $0.exited(.exited(code: 0), detail: "released the adopted engine (left running)", now: Monotonic.now) }
    }

    private func watchExit(of engine: EngineProcess, run: Int) {
        let exitTask = Task { await ExitWatcher.shared.waitForExit(pid: engine.pid, pidfd: engine.pidfd) }
        self.exitTask = exitTask
        Task { [weak self] in
            let status = await exitTask.value
            await self?.engineExited(status, run: run)
        }
    }

    private func engineExited(_ status: ExitStatus, run: Int) async {
        guard run == self.run, !terminating, process != nil else { return }
        logger.warning("engine exited by itself", metadata: ["status": "\(status)"])
        // Whatever the engine left behind (vLLM's EngineCore holding the GPU) goes before
        // anything else happens: a restart would otherwise find the GPU or port taken.
        terminating = true
        if var tree {
            _ = await tree.terminate(grace: Self.orphanGrace, pidfd: nil)
            self.tree = tree
        }
        if let port { await driver.cleanup(context(port: port)) }
        closeProcess()
        guard run == self.run else { return }
        terminating = false
        let detail = lastLogDetail()
        // An engine that could not bind its port will not do better on a retry: say so and
        // stop (issue #3), instead of restarting it into the same wall.
        // An auto port taken between our pick and the engine's bind is picked again.
        // Only this run's lines: an earlier attempt's "address in use" must not make a later
        // failure (out of memory, a bad model) look like a lost port.
        if machine.state == .starting, let port,
            logFiles.lines(since: logOffsetAtSpawn, last: Self.failureTailLines).contains(where: Self.isAddressInUse)
        {
            let holder = Ports.holder(ofPort: port).map { " by \($0)" } ?? ""
            let auto = profile.port == .auto
            if auto {
                lostPort = port
                appendLogMarker("agentron: port \(port) was taken before the engine could bind it\(holder); picking another")
            }
            handle {
                $0.portLost(
                    reason: "port \(port) is already in use\(holder): the engine \(status) saying so; choose another port",
                    canPickAnother: auto, now: Monotonic.now)
            }
            return
        }
        handle { $0.exited(status, detail: detail, now: Monotonic.now) }
    }

    private func terminate(grace: Duration) {
        probeTask?.cancel()
        if external {
            // Not ours to stop: the exit is reported on the next turn, outside this handler.
            let run = self.run
            Task { [weak self] in await self?.releaseExternal(run: run) }
            return
        }
        guard process != nil, var tree, let exitTask, !terminating else { return }
        terminating = true
        let run = self.run
        let pidfd = process?.pidfd
        let driver = self.driver
        let cleanupContext = port.map { context(port: $0) }
        logger.info("stopping engine", metadata: ["grace": "\(TimeSpan(seconds: grace.seconds))"])
        Task { [weak self] in
            let report = await tree.terminate(grace: grace, pidfd: pidfd)
            if let cleanupContext { await driver.cleanup(cleanupContext) }
            let status = await exitTask.value
            await self?.terminated(status, report: report, run: run)
        }
    }

    private func terminated(_ status: ExitStatus, report: ProcessTree.TerminationReport, run: Int) {
        guard run == self.run else { return }
        if !report.killed.isEmpty {
            logger.warning("killed what was left after the grace period", metadata: ["pids": "\(report.killed)"])
            history.append(StateChange(
                at: UnixTime.now, state: machine.state,
                reason: "SIGKILL to \(report.killed.count) process(es) still running after the grace period: \(report.killed)"))
        }
        if !report.leftovers.isEmpty {
            logger.error("processes survived SIGKILL", metadata: ["pids": "\(report.leftovers)"])
        }
        closeProcess()
        // `terminating` stays set until the next spawn: the exit watcher's own report of
        // this exit must not be taken for a crash.
        handle { $0.exited(status, now: Monotonic.now) }
    }

    private func closeProcess() {
        if let process, process.pidfd >= 0 { close(process.pidfd) }
        process = nil
        tree = nil
        exitTask = nil
        processStartedAt = nil
    }

    private func scheduleRestart(after delay: Duration) {
        restartTask?.cancel()
        logger.info("restarting after backoff", metadata: ["delay": "\(TimeSpan(seconds: delay.seconds))"])
        restartTask = Task { [weak self] in
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch { return }
            }
            await self?.backoffElapsed()
        }
    }

    private func backoffElapsed() {
        restartTask = nil
        handle { $0.backoffElapsed(now: Monotonic.now) }
    }

    // MARK: Probes

    private func startStartupProbes() {
        guard let port else { return }
        let run = self.run
        let context = context(port: port)
        let driver = self.driver
        let deadline = ContinuousClock.now.advanced(by: profile.startupTimeout.duration)
        let logs = logFiles
        progress = nil
        probeTask?.cancel()
        probeTask = Task { [weak self] in
            if driver.needsPreparation {
                // The engine must answer before its slow work (a pull) can begin.
                let serving = await Self.probeUntilPassed(deadline: deadline, logs: logs) { timeout in
                    if let blocker = await self?.probeBlocker(run: run) { return .failed(blocker) }
                    return await driver.probeServing(context, timeout: timeout)
                } record: { await self?.record($0) }
                guard let self, !Task.isCancelled else { return }
                guard serving.passed else {
                    await self.startupTimedOut(detail: "last probe: \(serving.detail)", run: run)
                    return
                }
                do {
                    try await driver.prepare(context) { [weak self] update in await self?.setProgress(update, run: run) }
                } catch {
                    await self.startupFailed(reason: "\(error)", run: run)
                    return
                }
                guard !Task.isCancelled else { return }
            }
            let ready = await Self.probeUntilPassed(deadline: deadline, logs: logs) { timeout in
                if let blocker = await self?.probeBlocker(run: run) { return .failed(blocker) }
                return await driver.probeReadiness(context, timeout: timeout)
            } record: { await self?.record($0) }
            guard let self, !Task.isCancelled else { return }
            if ready.passed {
                await self.startupPassed(run: run)
            } else {
                await self.startupTimedOut(detail: "last probe: \(ready.detail)", run: run)
            }
        }
    }

    /// Probes until one passes or `deadline`: fast at first, easing to about a second.
    /// Returns the last outcome; a failed one means the deadline passed (or cancellation).
    private static func probeUntilPassed(
        deadline: ContinuousClock.Instant, logs: LogFiles, probe: (Duration) async -> ProbeOutcome,
        record: (ProbeOutcome) async -> Void
    ) async -> ProbeOutcome {
        var interval = startupProbeFirstInterval
        var last = ProbeOutcome.failed("not probed yet")
        while !Task.isCancelled {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return last }
            last = await probe(min(startupProbeTimeout, remaining))
            await record(last)
            // A start may log for many minutes (download progress): keep the log under
            // its cap then too, not only once the server is ready (issue #10).
            logs.rotateIfNeeded()
            if last.passed { return last }
            // Sleep until the next probe is due, or, while the engine still refuses
            // connections, until it logs something (it logs as it starts listening). Once it
            // answers HTTP, its access log would echo our own probes: plain backoff then.
            let due = ContinuousClock.now.advanced(by: min(interval, max(remaining, .milliseconds(1))))
            let watchLog = last.detail.contains("connection refused")
            let size = logs.currentSize
            while ContinuousClock.now < due, !watchLog || logs.currentSize == size {
                do { try await Task.sleep(for: min(startupLogWatchInterval, ContinuousClock.now.duration(to: due))) } catch {
                    return last
                }
            }
            interval = min(interval * startupProbeGrowth, startupProbeMaxInterval)
        }
        return last
    }

    /// The run whose listener was seen to be the engine's own: checked until then, since a
    /// process cannot hand its listening socket to another once it holds it.
    private var listenerConfirmedRun: Int?

    /// Before a startup probe: why it must not be sent, or nil to send it. A probe goes
    /// only to a listener known to be the engine's own (a process of its tree): when
    /// nothing listens yet it would be refused anyway, and a stranger who binds the port
    /// first (another user) is never sent one, so it can neither make the server ready nor
    /// receive the engine's API key (issue #10). Once confirmed, the engine holds the
    /// listening socket and no one else can take that address, so later probes go at once.
    private func probeBlocker(run: Int) -> String? {
        guard run == self.run, !external, driver.listenerCheck != .none, listenerConfirmedRun != run,
            let port, let tree
        else { return nil }
        let ownership = Ports.ownership(
            ofPort: port, host: profile.host, check: driver.listenerCheck, members: { tree.currentMembers().map(\.pid) })
        switch ownership {
        case .nobody:
            // The same words as a refused probe: the startup loop watches the engine's log
            // to probe again as soon as it starts listening.
            return "connection refused: nothing listens on port \(port) yet"
        case .ours:
            listenerConfirmedRun = run
            return nil
        case .foreign(let holder):
            return "port \(port) is answered by \(holder), not by the engine; not probing it"
        }
    }

    private func setProgress(_ update: EngineProgress, run: Int) {
        guard run == self.run, machine.state == .starting else { return }
        progress = update
    }

    private func startupFailed(reason: String, run: Int) {
        guard run == self.run else { return }
        handle { $0.startupFailed(reason: reason, now: Monotonic.now) }
    }

    private func startupPassed(run: Int) {
        guard run == self.run else { return }
        handle { $0.startupProbePassed(now: Monotonic.now) }
    }

    private func startupTimedOut(detail: String, run: Int) {
        guard run == self.run else { return }
        handle { $0.startupTimedOut(detail: detail, now: Monotonic.now) }
    }

    private func startLivenessProbes() {
        guard let port else { return }
        let run = self.run
        let context = context(port: port)
        let driver = self.driver
        let settings = profile.probe
        probeTask?.cancel()
        probeTask = Task { [weak self] in
            // A fixed rate: the next probe is due `interval` after the last one began, so a
            // probe that times out does not stretch the cycle to interval + timeout.
            var next = ContinuousClock.now.advanced(by: settings.interval.duration)
            while !Task.isCancelled {
                do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
                next = next.advanced(by: settings.interval.duration)
                let outcome = await driver.probeLiveness(context, timeout: settings.timeout.duration)
                guard let self, !Task.isCancelled else { return }
                await self.livenessResult(outcome, run: run)
                // A probe slower than the interval: start the next one at once, not in a burst.
                if next < ContinuousClock.now { next = ContinuousClock.now }
            }
        }
    }

    private func livenessResult(_ outcome: ProbeOutcome, run: Int) {
        guard run == self.run else { return }
        record(outcome)
        // Housekeeping rides on the probe tick: remember the tree (a helper that leaves the
        // session is still found at stop; a no-op with a cgroup) and keep the log under its
        // cap. A /proc scan per server per probe would cost the daemon more than the probes.
        let now = Monotonic.now
        if now - lastTreeRefresh >= Self.treeRefreshInterval.seconds {
            lastTreeRefresh = now
            tree?.refresh()
        }
        logFiles.rotateIfNeeded()
        handle { $0.livenessProbe(passed: outcome.passed, detail: outcome.detail, now: Monotonic.now) }
    }

    private func record(_ outcome: ProbeOutcome) {
        // Keep every liveness result but only changes during startup, so a long load does
        // not push everything else out.
        if machine.state == .starting, let last = probes.last, last.passed == outcome.passed, last.detail == outcome.detail {
            probes[probes.count - 1].at = UnixTime.now
            return
        }
        probes.append(ProbeResult(at: UnixTime.now, passed: outcome.passed, detail: outcome.detail))
        if probes.count > Self.probeHistoryLimit { probes.removeFirst(probes.count - Self.probeHistoryLimit) }
    }

    // MARK: Logs

    private func appendLogMarker(_ line: String) {
        let fd = open(logFiles.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array("\(line)\n".utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// vLLM and uvicorn: "[Errno 98] Address already in use"; Go and C servers: "address already in use".
    static func isAddressInUse(_ line: String) -> Bool {
        line.lowercased().contains("address already in use")
    }

    private func lastLogDetail() -> String? {
        logFiles.lastLine().map(profile.redact).map { $0.count > 300 ? String($0.prefix(300)) + "…" : $0 }
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
