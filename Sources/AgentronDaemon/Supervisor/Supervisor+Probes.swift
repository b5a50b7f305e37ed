import AgentronCore
import AgentronEngines
import AgentronProcess

/// Startup and liveness probes. The probe loops only observe: each result is an event of
/// the state machine, which decides what a pass, a failure or a timeout means.
extension Supervisor {
    /// Startup probes start fast (an engine can be ready in tens of milliseconds) and ease
    /// to about a second for engines that load for minutes (docs/state-machine.md, issue #3).
    static let startupProbeFirstInterval: Duration = .milliseconds(25)
    static let startupProbeMaxInterval: Duration = .seconds(1)
    static let startupProbeGrowth = 1.25
    /// Per-attempt bound of a startup probe: a loading engine that accepted the connection
    /// but answers slowly must not stall the probe loop for the whole startup timeout.
    static let startupProbeTimeout: Duration = .seconds(5)
    /// How often, at most, the process tree is rescanned (sessions path only).
    static let treeRefreshInterval: Duration = .seconds(15)
    /// Between startup probes the engine's log is watched this often: a new line (vLLM's
    /// "Application startup complete" comes as it starts listening) triggers a probe at
    /// once, so readiness is seen within about this long instead of a whole probe interval.
    static let startupLogWatchInterval: Duration = .milliseconds(25)

    // MARK: Startup

    func startStartupProbes() {
        guard let port else { return }
        let run = self.run
        let context = context(port: port)
        let driver = self.driver
        let clock = self.clock
        let deadline = clock.now + profile.startupTimeout.seconds
        let logs = logFiles
        progress = nil
        probeTask?.cancel()
        probeTask = Task { [weak self] in
            if driver.needsPreparation {
                // The engine must answer before its slow work (a pull) can begin.
                let serving = await Self.probeUntilPassed(deadline: deadline, clock: clock, logs: logs) { timeout in
                    if let blocker = await self?.probeBlocker(run: run) { return .failed(blocker) }
                    return await driver.probeServing(context, timeout: timeout)
                } record: {
                    await self?.record($0)
                }
                guard let self, !Task.isCancelled else { return }
                guard serving.passed else {
                    await self.startupTimedOut(detail: "last probe: \(serving.detail)", run: run)
                    return
                }
                do {
                    try await driver.prepare(context) { [weak self] update in await self?.setProgress(update, run: run)
                    }
                } catch {
                    await self.startupFailed(reason: "\(error)", run: run)
                    return
                }
                guard !Task.isCancelled else { return }
            }
            let ready = await Self.probeUntilPassed(deadline: deadline, clock: clock, logs: logs) { timeout in
                if let blocker = await self?.probeBlocker(run: run) { return .failed(blocker) }
                return await driver.probeReadiness(context, timeout: timeout)
            } record: {
                await self?.record($0)
            }
            guard let self, !Task.isCancelled else { return }
            if ready.passed {
                await self.startupPassed(run: run)
            } else {
                await self.startupTimedOut(detail: "last probe: \(ready.detail)", run: run)
            }
        }
    }

    /// Probes until one passes or `deadline` (seconds on `clock`): fast at first, easing to
    /// about a second. Returns the last outcome; a failed one means the deadline passed (or
    /// cancellation).
    private static func probeUntilPassed(
        deadline: Double, clock: any SupervisorClock, logs: LogFiles, probe: (Duration) async -> ProbeOutcome,
        record: (ProbeOutcome) async -> Void
    ) async -> ProbeOutcome {
        var interval = startupProbeFirstInterval
        var last = ProbeOutcome.failed("not probed yet")
        while !Task.isCancelled {
            let remaining = Duration.seconds(deadline - clock.now)
            if remaining <= .zero { return last }
            last = await probe(min(startupProbeTimeout, remaining))
            await record(last)
            // A start may log for many minutes (download progress): keep the log under
            // its cap then too, not only once the server is ready (issue #10).
            _ = logs.rotateIfNeeded()
            if last.passed { return last }
            // Sleep until the next probe is due, or, while the engine still refuses
            // connections, until it logs something (it logs as it starts listening). Once it
            // answers HTTP, its access log would echo our own probes: plain backoff then.
            let due = clock.now + min(interval, max(remaining, .milliseconds(1))).seconds
            let watchLog = last.detail.contains("connection refused")
            let size = logs.currentSize
            while clock.now < due, !watchLog || logs.currentSize == size {
                do { try await clock.sleep(for: min(startupLogWatchInterval, .seconds(max(due - clock.now, 0)))) } catch
                {
                    return last
                }
            }
            interval = min(interval * startupProbeGrowth, startupProbeMaxInterval)
        }
        return last
    }

    /// Before a startup probe: why it must not be sent, or nil to send it. A probe goes
    /// only to a listener known to be the engine's own (a process of its tree): when
    /// nothing listens yet it would be refused anyway, and a stranger who binds the port
    /// first (another user) is never sent one, so it can neither make the server ready nor
    /// receive the engine's API key (issue #10). Once confirmed, the engine holds the
    /// listening socket and no one else can take that address, so later probes go at once.
    /// An attached engine is someone else's by definition: it is probed as it is.
    private func probeBlocker(run: Int) -> String? {
        guard run == self.run, !machine.attached, driver.listenerCheck != .none, listenerConfirmedRun != run,
            let port, let tree
        else { return nil }
        let ownership = host.ownership(
            ofPort: port, host: profile.host, check: driver.listenerCheck, members: { tree.memberPIDs() })
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
        handle { $0.startupFailed(reason: reason, now: $1) }
    }

    private func startupPassed(run: Int) {
        guard run == self.run else { return }
        handle { $0.startupProbePassed(now: $1) }
    }

    private func startupTimedOut(detail: String, run: Int) {
        guard run == self.run else { return }
        handle { $0.startupTimedOut(detail: detail, now: $1) }
    }

    // MARK: Liveness

    func startLivenessProbes() {
        guard let port else { return }
        let run = self.run
        let context = context(port: port)
        let driver = self.driver
        let clock = self.clock
        let settings = profile.probe
        probeTask?.cancel()
        probeTask = Task { [weak self] in
            // A fixed rate: the next probe is due `interval` after the last one began, so a
            // probe that times out does not stretch the cycle to interval + timeout. The
            // times sit on a grid of the interval, shared by every server with that
            // interval: a hundred servers wake the daemon once per tick and their probes go
            // out together through the one HTTP thread, not a hundred wakeups spread over
            // the interval (issue #14).
            var next = Self.nextTick(after: clock.now, interval: settings.interval.seconds)
            while !Task.isCancelled {
                let wait = next - clock.now
                if wait > 0 {
                    do { try await clock.sleep(for: .seconds(wait)) } catch { return }
                }
                next += settings.interval.seconds
                let outcome = await driver.probeLiveness(context, timeout: settings.timeout.duration)
                guard let self, !Task.isCancelled else { return }
                await self.livenessResult(outcome, run: run)
                // A probe slower than the interval: start the next one at once, not in a burst.
                next = max(next, clock.now)
            }
        }
    }

    /// The first multiple of `interval` after `now` (at least a tenth of an interval away,
    /// so a server that just became ready is not probed at once).
    static func nextTick(after now: Double, interval: Double) -> Double {
        guard interval > 0, now.isFinite else { return now + max(interval, 0) }
        let tick = ((now + interval / 10) / interval).rounded(.up) * interval
        return tick.isFinite ? tick : now + interval
    }

    private func livenessResult(_ outcome: ProbeOutcome, run: Int) {
        guard run == self.run else { return }
        record(outcome)
        // Housekeeping rides on the probe tick: remember the tree (a helper that leaves the
        // session is still found at stop; a no-op with a cgroup) and keep the log under its
        // cap. A /proc scan per server per probe would cost the daemon more than the probes.
        let now = clock.now
        if now - lastTreeRefresh >= Self.treeRefreshInterval.seconds {
            lastTreeRefresh = now
            tree?.refresh()
        }
        _ = logFiles.rotateIfNeeded()
        handle { $0.livenessProbe(passed: outcome.passed, detail: outcome.detail, now: $1) }
    }

    func record(_ outcome: ProbeOutcome) {
        // Keep every liveness result but only changes during startup, so a long load does
        // not push everything else out.
        if machine.state == .starting, let last = probes.last, last.passed == outcome.passed,
            last.detail == outcome.detail
        {
            probes[probes.count - 1].at = UnixTime.now
            return
        }
        probes.append(ProbeResult(at: UnixTime.now, passed: outcome.passed, detail: outcome.detail))
        if probes.count > Self.probeHistoryLimit { probes.removeFirst(probes.count - Self.probeHistoryLimit) }
    }
}
