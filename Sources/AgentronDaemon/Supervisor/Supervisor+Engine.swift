import AgentronCore
import AgentronEngines
import AgentronProcess
import Glibc
import Logging

/// The engine's process: spawn or attach, watch, terminate, reap, restore. Each function
/// performs one action of the state machine and reports the outcome as an event.
extension Supervisor {
    /// After an engine's main process dies by itself, what is left of its tree (vLLM's
    /// EngineCore holding the GPU) gets this long after SIGTERM before SIGKILL.
    static let orphanGrace: Duration = .seconds(5)

    // MARK: Spawn

    func spawn() {
        run += 1
        let run = self.run
        probeTask?.cancel()
        let port: Int
        switch profile.port {
        case .fixed(let fixed):
            guard host.isFree(host: profile.host, port: fixed) else {
                let holder = host.holder(ofPort: fixed)
                var reason =
                    "port \(fixed) on \(profile.host) is already in use\(holder.map { " by \($0)" } ?? ""); choose another with --port or `port:` in the profile, or use port: auto"
                if let advice = driver.advice(forPortHeldBy: holder) { reason += advice }
                handle { $0.spawnFailed(reason: reason, now: $1) }
                return
            }
            port = fixed
        case .auto:
            guard let picked = ports.claim(for: name, host: profile.host, previous: self.port, avoiding: lostPort)
            else {
                let reason =
                    "no free port on \(profile.host) in \(ports.range) (set \(PortTable.rangeVariable)=LOW-HIGH for another range)"
                handle { $0.spawnFailed(reason: reason, now: $1) }
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
        defer { if !started { _ = cgroup?.remove() } }
        do {
            let launch = try driver.launch(context)
            _ = logFiles.rotateIfNeeded()
            let shown = Profile.redactArguments(launch.arguments).map(profile.redact)
            appendLogMarker("agentron: starting \(shown.joined(separator: " "))")
            logOffsetAtSpawn = logFiles.currentSize
            cgroup = cgroups?.create(name: name)
            if cgroups != nil && cgroup == nil {
                logger.warning("cannot create a cgroup for the engine; relying on its session alone")
            }
            spawned = try host.spawn(launch, logPath: logFiles.path, cgroup: cgroup)
        } catch let error as SpawnError {
            let reason = if case .executableNotFound = error { "\(error); \(driver.installHint)" } else { "\(error)" }
            handle { $0.spawnFailed(reason: reason, now: $1) }
            return
        } catch {
            handle { $0.spawnFailed(reason: "\(error)", now: $1) }
            return
        }
        started = true
        logger.info("spawned engine", metadata: ["pid": "\(spawned.pid)", "port": "\(port)"])
        process = spawned
        processStartedAt = UnixTime.now
        tree = host.tree(leader: spawned.pid, known: [:], cgroup: cgroup)
        watchExit(of: spawned, run: run)
        handle { $0.spawned(now: $1) }
    }

    /// The last auto port was taken before the engine could bind it: the next spawn picks
    /// another, and the log says why the engine starts again.
    func noteLostPort() {
        guard let port else { return }
        lostPort = port
        let holder = host.holder(ofPort: port).map { " by \($0)" } ?? ""
        appendLogMarker("agentron: port \(port) was taken before the engine could bind it\(holder); picking another")
    }

    // MARK: Attached engines (adopt: true)

    /// Uses an engine already answering on the profile's port (an Ollama system service) as
    /// this run: probed, prepared and registered, never signalled.
    func attach() {
        run += 1
        probeTask?.cancel()
        guard case .fixed(let port) = profile.port, !host.isFree(host: profile.host, port: port) else {
            let address = if case .fixed(let port) = profile.port { "\(profile.host):\(port)" } else { profile.host }
            handle {
                $0.spawnFailed(
                    reason:
                        "nothing listens on \(address) to adopt; start the engine first, or drop --adopt to let agentron start one",
                    now: $1)
            }
            return
        }
        self.port = port
        appendLogMarker(
            "agentron: adopting the engine already answering on \(profile.host):\(port) (not started, and never stopped, by agentron)"
        )
        logger.info("adopting a running engine", metadata: ["port": "\(port)"])
        handle { $0.spawned(now: $1) }
    }

    /// Stopping an attached engine only ends our supervision of it; the event comes on the
    /// next turn, outside the handler that asked for it.
    func releaseAttached() {
        probeTask?.cancel()
        let run = self.run
        Task { [weak self] in await self?.attachedReleased(run: run) }
    }

    private func attachedReleased(run: Int) {
        guard run == self.run else { return }
        appendLogMarker("agentron: released the adopted engine (left running)")
        handle { $0.released(now: $1) }
    }

    // MARK: Exits

    func watchExit(of engine: EngineProcess, run: Int) {
        let host = self.host
        let exitTask = Task { await host.waitForExit(engine) }
        self.exitTask = exitTask
        Task { [weak self] in
            let status = await exitTask.value
            await self?.processExitReported(status, run: run)
        }
    }

    private func processExitReported(_ status: ExitStatus, run: Int) {
        guard run == self.run else { return }
        if machine.engine == .running { logger.warning("engine exited by itself", metadata: ["status": "\(status)"]) }
        handle { $0.processExited(status, now: $1) }
    }

    /// The main process died by itself: what it left behind (vLLM's EngineCore holding the
    /// GPU) goes before anything else happens, or a restart would find the GPU or port taken.
    func reapRemnants() {
        probeTask?.cancel()
        let run = self.run
        let status = machine.lastExit ?? .unknown
        let tree = self.tree
        let driver = self.driver
        let cleanupContext = port.map { context(port: $0) }
        Task { [weak self] in
            var remaining = tree
            _ = await remaining?.terminate(grace: Self.orphanGrace, pidfd: nil)
            if let cleanupContext { await driver.cleanup(cleanupContext) }
            await self?.reaped(status, run: run)
        }
    }

    private func reaped(_ status: ExitStatus, run: Int) {
        guard run == self.run else { return }
        closeProcess()
        // Only this run's lines: an earlier attempt's "address in use" must not make a later
        // failure (out of memory, a bad model) look like a lost port.
        var portLost: ServerStateMachine.PortLoss?
        if let port,
            logFiles.lines(since: logOffsetAtSpawn, last: Self.failureTailLines).contains(where: Self.isAddressInUse)
        {
            let holder = host.holder(ofPort: port).map { " by \($0)" } ?? ""
            portLost = ServerStateMachine.PortLoss(
                reason: "port \(port) is already in use\(holder): the engine \(status) saying so; choose another port",
                canPickAnother: profile.port == .auto)
        }
        let detail = lastLogDetail()
        handle { $0.exited(status, detail: detail, portLost: portLost, now: $1) }
    }

    // MARK: Terminate

    func terminate(grace: Duration) {
        probeTask?.cancel()
        guard let process, let tree, let exitTask else { return }
        let run = self.run
        let driver = self.driver
        let cleanupContext = port.map { context(port: $0) }
        logger.info("stopping engine", metadata: ["grace": "\(TimeSpan(seconds: grace.seconds))"])
        Task { [weak self] in
            var stopping = tree
            let report = await stopping.terminate(grace: grace, pidfd: process.pidfd)
            if let cleanupContext { await driver.cleanup(cleanupContext) }
            let status = await exitTask.value
            await self?.terminated(status, report: report, run: run)
        }
    }

    private func terminated(_ status: ExitStatus, report: ProcessTree.TerminationReport, run: Int) {
        guard run == self.run else { return }
        if !report.killed.isEmpty {
            logger.warning("killed what was left after the grace period", metadata: ["pids": "\(report.killed)"])
            history.append(
                StateChange(
                    at: UnixTime.now, state: machine.state,
                    reason:
                        "SIGKILL to \(report.killed.count) process(es) still running after the grace period: \(report.killed)"
                ))
        }
        if !report.leftovers.isEmpty {
            logger.error("processes survived SIGKILL", metadata: ["pids": "\(report.leftovers)"])
        }
        closeProcess()
        handle { $0.exited(status, now: $1) }
    }

    func closeProcess() {
        if let process { host.release(process) }
        process = nil
        tree = nil
        exitTask = nil
        processStartedAt = nil
    }

    // MARK: Live restore

    /// Picks a server up from the state file after a daemon restart (docs/state-machine.md):
    /// a live engine is re-adopted as it is (same pid, counters kept) and watched through a
    /// pidfd; what the machine does next (probes, a stop it was in, a restart by policy for
    /// one that died meanwhile) is its `restored` decision.
    func restore(from record: StateStore.Record) async {
        profile = record.profile
        port = record.port
        if let port = record.port, record.profile.port == .auto { ports.hold(port, for: name) }
        let cgroup = record.cgroup.map(EngineCgroup.init(path:))
        let known = Dictionary(
            (record.descendants ?? []).map { ($0.pid, $0.startTime) }, uniquingKeysWith: { a, _ in a })
        var adopted: EngineProcess?
        if record.state.hasProcess, let pid = record.pid, let start = record.processStartTime {
            adopted = host.adopt(pid: pid, startTime: start)
        }
        let saved = ServerStateMachine.Saved(
            state: record.state, reason: record.reason, restartCount: record.restartCount ?? 0,
            totalRestarts: record.restarts, wanted: record.wanted)
        let (restored, actions) = ServerStateMachine.restored(
            profile: profile, saved: saved, engineAlive: adopted != nil, now: clock.now)
        machine = restored
        run += 1
        if let adopted {
            process = adopted
            processStartedAt = record.startedAt
            tree = host.tree(leader: adopted.pid, known: known, cgroup: cgroup)
            watchExit(of: adopted, run: run)
            recordChange(from: .stopped, note: "re-adopted engine pid \(adopted.pid) after a daemon restart")
            logger.info("re-adopted engine", metadata: ["pid": "\(adopted.pid)", "state": "\(machine.state.rawValue)"])
        } else {
            remnants = (known, cgroup)
            if machine.state != record.state || machine.reason != record.reason { recordChange(from: record.state) }
        }
        // What died while the daemon was away is killed before anything starts again.
        if actions.contains(.killRemnants) { await killRemnantsNow() }
        handle { _, _ in actions.filter { $0 != .killRemnants } }
    }

    /// `killRemnants` outside a restore (never returned elsewhere today): in the background.
    func killRemnants() {
        Task { await self.killRemnantsNow() }
    }

    private func killRemnantsNow() async {
        let (known, cgroup) = remnants
        remnants = ([:], nil)
        guard !known.isEmpty || cgroup != nil else { return }
        let killed = await host.killRemnants(known: known, cgroup: cgroup)
        if !killed.isEmpty {
            logger.warning(
                "killed what was left of an engine that died while the daemon was away", metadata: ["pids": "\(killed)"]
            )
        }
    }

    // MARK: Logs

    func appendLogMarker(_ line: String) {
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

    func lastLogDetail() -> String? {
        logFiles.lastLine().map(profile.redact).map { $0.count > 300 ? String($0.prefix(300)) + "…" : $0 }
    }
}
