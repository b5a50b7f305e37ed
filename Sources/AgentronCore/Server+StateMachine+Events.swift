/// The events of `ServerStateMachine`: each returns the actions the Supervisor performs, in
/// order. Every (state, event) pair is a row of the table in docs/state-machine.md.
extension ServerStateMachine {
    // MARK: Requests

    /// `up` and autostart. Clears a failed state and its counters. A server with no engine
    /// takes `profile`'s settings (a new spec; `applyProfile` tells the executor);
    /// `totalRestarts`, a lifetime count, stays.
    public mutating func startRequested(profile: Profile? = nil, now: Double) -> [Action] {
        wanted = true
        switch state {
        case .stopped, .failed:
            var actions: [Action] = []
            if let profile {
                settings = Settings(profile: profile)
                actions.append(.applyProfile)
            }
            beginRun()
            restartCount = 0
            restartTimes = []
            return actions + [launchAction]
        case .backoff:
            beginRun()
            return [.cancelRestart, launchAction]
        case .stopping:
            startAfterStop = true
            return []
        case .starting, .ready, .unhealthy:
            return []
        }
    }

    /// `agentron restart`: whatever runs is stopped and the server started again once it
    /// is gone, with the same spec; a failed state and its counters are cleared. One event,
    /// so nothing can slip in between the stop and the start.
    public mutating func restartRequested(now: Double) -> [Action] {
        switch state {
        case .stopped, .failed, .backoff, .stopping:
            return startRequested(now: now)
        case .starting, .ready, .unhealthy:
            wanted = true
            // A spawn still in flight: the start under way is already a fresh one.
            guard engine != .none else { return [] }
            let actions = beginStopping(.user, reason: nil)
            startAfterStop = true
            return actions
        }
    }

    /// A start that cannot even be attempted (at boot, the GPU devices never appeared): the
    /// server is wanted, and failed with `reason` until the next start. A server already
    /// starting or running is not touched.
    public mutating func startBlocked(reason: String, now: Double) -> [Action] {
        wanted = true
        switch state {
        case .stopped:
            beginRun()
            restartCount = 0
            restartTimes = []
            return fail(reason)
        case .failed:
            // Still failed, now for this reason; nobody waits on a settled state.
            self.reason = reason
            return []
        case .backoff:
            beginRun()
            return [.cancelRestart] + fail(reason)
        case .starting, .ready, .unhealthy, .stopping:
            return []
        }
    }

    /// `down`: idempotent; a stop during start aborts the start and kills the half-started engine.
    public mutating func stopRequested() -> [Action] {
        wanted = false
        switch state {
        case .starting, .ready, .unhealthy:
            return beginStopping(.user, reason: nil)
        case .stopping:
            startAfterStop = false
            if stopPurpose != .shutdown { stopPurpose = .user }
            return []
        case .backoff:
            return stopDuringBackoff(reason: nil)
        case .stopped, .failed:
            return []
        }
    }

    /// The daemon is shutting down and stops its engines; `wanted` is kept, so they start
    /// again with the daemon.
    public mutating func shutdownRequested() -> [Action] {
        switch state {
        case .starting, .ready, .unhealthy:
            return beginStopping(.shutdown, reason: nil)
        case .stopping:
            startAfterStop = false
            stopPurpose = .shutdown
            return []
        case .backoff:
            return stopDuringBackoff(reason: nil)
        case .stopped, .failed:
            return []
        }
    }

    /// The gateway's traffic for this server, reported every second while it is ready:
    /// requests in flight and when the last one ended (`lastActivity`, on the machine's
    /// clock; nil when none has been served since it became ready). A server with a `ttl`
    /// that has been idle that long, with nothing in flight, is stopped and is no longer
    /// wanted; a long stream in flight is never cut (docs/gateway.md).
    public mutating func idleCheck(inFlight: Int, lastActivity: Double?, now: Double) -> [Action] {
        guard let ttl = settings.idleTimeout, state == .ready || state == .unhealthy, inFlight <= 0,
            let servingSince
        else { return [] }
        let idleSince = max(lastActivity ?? servingSince, servingSince)
        guard now - idleSince >= ttl.seconds else { return [] }
        wanted = false
        return beginStopping(.idle, reason: "stopped after \(ttl) without a request (ttl)")
    }

    /// Another member of this server's `group` is starting (once the gateway's requests to
    /// this one have drained, or the drain's bound passed): stop, and no longer be wanted.
    public mutating func preempted(by other: String, group: String) -> [Action] {
        let reason = "stopped for \(other) (group \(group))"
        switch state {
        case .starting, .ready, .unhealthy:
            wanted = false
            return beginStopping(.preempted, reason: reason)
        case .backoff:
            wanted = false
            return stopDuringBackoff(reason: reason)
        case .stopping, .stopped, .failed:
            return []
        }
    }

    // MARK: Reports of the engine

    /// The engine process was started (or attached).
    public mutating func spawned(now: Double) -> [Action] {
        guard state == .starting, engine == .none else { return [] }
        engine = .running
        return [.startStartupProbes]
    }

    /// The engine could not be started at all (binary missing, fixed port taken): no retry
    /// would help.
    public mutating func spawnFailed(reason: String, now: Double) -> [Action] {
        guard state == .starting, engine == .none else { return [] }
        return fail(reason)
    }

    public mutating func startupProbePassed(now: Double) -> [Action] {
        guard state == .starting, engine == .running else { return [] }
        state = .ready
        reason = nil
        hasBeenReady = true
        readySince = now
        servingSince = now
        consecutiveProbeFailures = 0
        return [.startLivenessProbes, .resolveWaiters(.ready)]
    }

    public mutating func startupTimedOut(detail: String, now: Double) -> [Action] {
        guard state == .starting, engine == .running else { return [] }
        return beginStopping(.startupFailed, reason: "not ready within \(settings.startupTimeout) (\(detail))")
    }

    /// The engine answers but cannot become ready (an Ollama pull of an unknown model):
    /// stop it and fail with `reason`, as for a startup timeout.
    public mutating func startupFailed(reason: String, now: Double) -> [Action] {
        guard state == .starting, engine == .running else { return [] }
        return beginStopping(.startupFailed, reason: reason)
    }

    public mutating func livenessProbe(passed: Bool, detail: String, now: Double) -> [Action] {
        guard state == .ready || state == .unhealthy, engine == .running else { return [] }
        if passed {
            consecutiveProbeFailures = 0
            var actions: [Action] = []
            if state == .unhealthy {
                state = .ready
                reason = nil
                readySince = now
                // Ready is settled: an `up` that found the server unhealthy is waiting.
                actions.append(.resolveWaiters(.ready))
            }
            // A sustained healthy run forgives earlier crashes.
            if let since = readySince, now - since >= settings.restart.resetAfter.seconds, restartCount > 0 {
                restartCount = 0
                restartTimes = []
            }
            return actions
        }
        consecutiveProbeFailures += 1
        readySince = nil
        if consecutiveProbeFailures >= settings.probe.failureThreshold {
            return beginStopping(
                .restart, reason: "health check failed \(consecutiveProbeFailures) times in a row (last: \(detail))")
        }
        state = .unhealthy
        reason = "health check failed (\(consecutiveProbeFailures)/\(settings.probe.failureThreshold)): \(detail)"
        return []
    }

    /// The exit watcher saw the engine's main process end. While we terminate it, that is
    /// expected and the terminate reports `exited` when the whole tree is gone; an engine
    /// that died by itself first has its remnants reaped.
    public mutating func processExited(_ status: ExitStatus, now: Double) -> [Action] {
        switch engine {
        case .running where !attached:
            lastExit = status
            engine = .reaping
            return [.reapRemnants]
        case .terminating:
            lastExit = status
            return []
        case .none, .running, .reaping:
            return []
        }
    }

    /// The engine is gone, its tree and what lived outside it cleaned up (after
    /// `terminate` or `reapRemnants`, or, for a re-adopted one, vanished). `portLost`: it
    /// said its port was already in use.
    ///
    /// An engine that lost its port during startup (`port: auto`: another program, or the
    /// kernel handing it out as an outgoing port, got there between our pick and its bind)
    /// is started anew on another port, a few times; a fixed port fails at once, since a
    /// retry would meet the same wall (issue #10).
    public mutating func exited(_ status: ExitStatus, detail: String? = nil, portLost: PortLoss? = nil, now: Double)
        -> [Action]
    {
        lastExit = status
        if state == .starting, let portLost {
            engine = .none
            guard portLost.canPickAnother, portRetries < Self.maxPortRetries else { return fail(portLost.reason) }
            portRetries += 1
            reason = nil
            return [.noteLostPort, launchAction]
        }
        return engineGone(failure: !status.isSuccess, what: "engine \(status)", detail: detail, now: now)
    }

    /// An attached engine's supervision ended (`release`); the engine itself runs on.
    public mutating func released(now: Double) -> [Action] {
        guard attached, engine == .terminating else { return [] }
        return engineGone(failure: false, what: "the attached engine was released", detail: nil, now: now)
    }

    public mutating func backoffElapsed(now: Double) -> [Action] {
        guard state == .backoff else { return [] }
        state = .starting
        consecutiveProbeFailures = 0
        return [launchAction]
    }

    // MARK: Helpers

    /// How this server's engine is brought up: spawned, or attached for `adopt: true`.
    private var launchAction: Action { settings.attach ? .attach : .spawn }

    private mutating func beginRun() {
        hasBeenReady = false
        readySince = nil
        consecutiveProbeFailures = 0
        stopPurpose = nil
        reason = nil
        startAfterStop = false
        portRetries = 0
        state = .starting
        attached = settings.attach
    }

    /// A stop while only a restart is scheduled: nothing runs, so the server is stopped at once.
    private mutating func stopDuringBackoff(reason: String?) -> [Action] {
        state = .stopped
        self.reason = reason
        return [.cancelRestart, .resolveWaiters(.stopped)]
    }

    mutating func beginStopping(_ purpose: StopPurpose, reason: String?) -> [Action] {
        state = .stopping
        stopPurpose = purpose
        if let reason { self.reason = reason }
        let grace = nextStopGrace ?? settings.stopGrace
        nextStopGrace = nil
        switch engine {
        case .running:
            engine = .terminating
            return attached ? [.release] : [.terminate(grace: grace)]
        case .terminating, .reaping:
            // Already on its way out: its `exited` ends this stop.
            return []
        case .none:
            // Nothing runs (a spawn still in flight): the stop is done at once. `now` does not
            // matter: only a liveness stop restarts, and liveness needs a running engine.
            return engineGone(failure: false, what: "not started", detail: nil, now: 0)
        }
    }

    private mutating func engineGone(failure: Bool, what: String, detail: String?, now: Double) -> [Action] {
        engine = .none
        let detail = detail.map { ": \($0)" } ?? ""
        switch state {
        case .stopping:
            // An exit during stopping is not a crash: it is what we asked for.
            let purpose = stopPurpose ?? .user
            stopPurpose = nil
            if startAfterStop {
                beginRun()
                restartCount = 0
                restartTimes = []
                return [launchAction]
            }
            switch purpose {
            case .user, .shutdown:
                state = .stopped
                reason = nil
                return [.resolveWaiters(.stopped)]
            case .idle, .preempted:
                state = .stopped
                return [.resolveWaiters(.stopped)]
            case .startupFailed:
                return fail(reason ?? "not ready within \(settings.startupTimeout)")
            case .restart:
                return restartByPolicy(afterFailure: true, reason: reason ?? "restarted", now: now)
            }
        case .starting where !hasBeenReady:
            return fail(what + " during startup" + detail)
        case .starting, .ready, .unhealthy:
            return restartByPolicy(afterFailure: failure, reason: what + detail, now: now)
        case .stopped, .backoff, .failed:
            return []
        }
    }

    private mutating func fail(_ reason: String) -> [Action] {
        state = .failed
        self.reason = reason
        return [.resolveWaiters(.failed)]
    }

    private mutating func restartByPolicy(afterFailure: Bool, reason: String, now: Double) -> [Action] {
        let restart = settings.restart
        let wanted: Bool =
            switch restart.mode {
            case .always: true
            case .onFailure: afterFailure
            case .never: false
            }
        guard wanted else {
            if afterFailure { return fail(reason) }
            state = .stopped
            self.reason = reason
            return [.resolveWaiters(.stopped)]
        }
        restartTimes.removeAll { now - $0 > restart.window.seconds }
        if restartTimes.count >= restart.maxRestarts {
            return fail("\(reason); restarted \(restartTimes.count) times within \(restart.window), giving up")
        }
        let delay = backoffDelay(forAttempt: restartCount)
        restartCount += 1
        totalRestarts += 1
        restartTimes.append(now)
        state = .backoff
        self.reason = reason
        hasBeenReady = true  // a failed restart attempt is a crash too, not a first-start failure
        return [.scheduleRestart(after: delay)]
    }
}
