/// One server's supervision logic as a pure value type: events in, actions out, no I/O
/// (docs/state-machine.md, docs/conventions.md). The daemon's supervisor actor feeds
/// it events and performs the actions it returns. Time is passed in (`now`, seconds on a
/// monotonic clock) so tests drive it without clocks or processes.
public struct ServerStateMachine: Sendable, Equatable {
    /// Why the engine is being terminated; decides where `stopping` goes when it exits.
    public enum StopPurpose: String, Sendable, Equatable, Codable {
        /// `agentron down`: end in `stopped`.
        case user
        /// The daemon is shutting down: end in `stopped`.
        case shutdown
        /// The liveness threshold was crossed: restart by policy.
        case restart
        /// Not ready within the startup timeout, or cannot become ready: end in `failed`.
        case startupFailed
    }

    public enum Action: Sendable, Equatable {
        /// Start the engine process (the supervisor answers with `spawned` or `spawnFailed`).
        case spawn
        /// Probe for readiness until `startupProbePassed` or the startup timeout.
        case startStartupProbes
        /// Probe liveness at the profile's interval while ready or unhealthy.
        case startLivenessProbes
        /// SIGTERM the engine's group, wait `grace`, SIGKILL everything left of its tree.
        case terminate(grace: TimeSpan)
        /// Feed `backoffElapsed` after this delay.
        case scheduleRestart(after: TimeSpan)
        /// A scheduled restart is no longer wanted.
        case cancelRestart
        /// Everyone waiting for the outcome of a start is told the settled state.
        case resolveWaiters(ServerState)
    }

    public private(set) var state: ServerState = .stopped
    /// Why the server is not ready (or why it failed), for `ps` and `inspect`.
    public private(set) var reason: String?
    /// Restarts since the last sustained healthy period.
    public private(set) var restartCount = 0
    /// Restarts over the server's whole life in this daemon, for `ps`.
    public private(set) var totalRestarts = 0
    public private(set) var consecutiveProbeFailures = 0
    public private(set) var stopPurpose: StopPurpose?
    public private(set) var lastExit: ExitStatus?

    private let restart: RestartPolicy
    private let probe: ProbeSettings
    private let stopGrace: TimeSpan
    /// A one-off grace from `down --timeout`, used by the next terminate.
    private var nextStopGrace: TimeSpan?
    private let startupTimeout: TimeSpan
    /// When each recent restart happened, to detect a crash loop within `restart.window`.
    private var restartTimes: [Double] = []
    /// Whether this run (since the last start request) has been ready: an exit during the
    /// first start fails at once, an exit after that is a crash handled by the restart policy.
    private var hasBeenReady = false
    private var readySince: Double?
    /// An `up` that arrived while the old engine was still stopping.
    private var startAfterStop = false

    public init(profile: Profile) {
        self.restart = profile.restart
        self.probe = profile.probe
        self.stopGrace = profile.stopTimeout
        self.startupTimeout = profile.startupTimeout
    }

    /// Restores a machine for an engine re-adopted after a daemon restart.
    /// The engine is alive: it continues as ready (liveness probes decide from here) or
    /// starting (startup probes resume).
    public static func adopted(profile: Profile, state: ServerState, restartCount: Int, totalRestarts: Int, now: Double) -> ServerStateMachine {
        var machine = ServerStateMachine(profile: profile)
        let wasReady = state == .ready || state == .unhealthy
        machine.state = wasReady ? .ready : .starting
        machine.hasBeenReady = wasReady
        machine.readySince = wasReady ? now : nil
        machine.restartCount = restartCount
        machine.totalRestarts = totalRestarts
        return machine
    }

    /// Restores a machine for a server that has no live engine after a daemon restart: a
    /// stopped or failed one keeps its state and reason; one that should be running is
    /// treated as having crashed while the daemon was away (the caller feeds `exited`).
    public static func restored(profile: Profile, state: ServerState, reason: String?, restartCount: Int, totalRestarts: Int, now: Double) -> ServerStateMachine {
        var machine = ServerStateMachine(profile: profile)
        machine.restartCount = restartCount
        machine.totalRestarts = totalRestarts
        switch state {
        case .stopped, .failed:
            machine.state = state
            machine.reason = reason
        case .stopping:
            // It was being stopped and is gone: that stop is done.
            machine.state = .stopped
        case .starting, .ready, .unhealthy, .backoff:
            // Running when the daemon went away: an exit now is a crash, handled by policy.
            machine.state = .ready
            machine.hasBeenReady = true
        }
        return machine
    }

    /// `down --timeout D` replaces the profile's grace for the next stop only.
    public mutating func overrideStopGrace(_ grace: TimeSpan) {
        nextStopGrace = grace
    }

    // MARK: Events

    /// `up`, `restart`, autostart. Clears a failed state and its counters.
    public mutating func startRequested(now: Double) -> [Action] {
        switch state {
        case .stopped, .failed:
            resetRun()
            restartCount = 0
            restartTimes = []
            state = .starting
            return [.spawn]
        case .backoff:
            resetRun()
            state = .starting
            return [.cancelRestart, .spawn]
        case .stopping:
            startAfterStop = true
            return []
        case .starting, .ready, .unhealthy:
            return []
        }
    }

    public mutating func spawned(now: Double) -> [Action] {
        guard state == .starting else { return [] }
        return [.startStartupProbes]
    }

    /// How often one start may move to a new port after losing its picked one.
    public static let maxPortRetries = 3
    private var portRetries = 0

    /// The engine exited during startup because its port was taken after the daemon
    /// picked it (`port: auto`: another program, or the kernel handing it out as an
    /// outgoing port, got there first). An auto port is picked again and the engine
    /// started anew, a few times; a fixed port fails as `spawnFailed` does (issue #10).
    public mutating func portLost(reason: String, canPickAnother: Bool, now: Double) -> [Action] {
        guard state == .starting else { return [] }
        guard canPickAnother, portRetries < Self.maxPortRetries else { return fail(reason) }
        portRetries += 1
        self.reason = nil
        return [.spawn]
    }

    /// The engine could not be started at all (binary missing, port taken): no retry would help.
    public mutating func spawnFailed(reason: String, now: Double) -> [Action] {
        guard state == .starting else { return [] }
        return fail(reason)
    }

    public mutating func startupProbePassed(now: Double) -> [Action] {
        guard state == .starting else { return [] }
        state = .ready
        reason = nil
        hasBeenReady = true
        readySince = now
        consecutiveProbeFailures = 0
        return [.startLivenessProbes, .resolveWaiters(.ready)]
    }

    public mutating func startupTimedOut(detail: String, now: Double) -> [Action] {
        guard state == .starting else { return [] }
        return beginStopping(.startupFailed, reason: "not ready within \(startupTimeout) (\(detail))")
    }

    /// The engine answers but cannot become ready (an Ollama pull of an unknown model):
    /// stop it and fail with `reason`, as for a startup timeout.
    public mutating func startupFailed(reason: String, now: Double) -> [Action] {
        guard state == .starting else { return [] }
        return beginStopping(.startupFailed, reason: reason)
    }

    public mutating func livenessProbe(passed: Bool, detail: String, now: Double) -> [Action] {
        guard state == .ready || state == .unhealthy else { return [] }
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
            if let since = readySince, now - since >= restart.resetAfter.seconds, restartCount > 0 {
                restartCount = 0
                restartTimes = []
            }
            return actions
        }
        consecutiveProbeFailures += 1
        readySince = nil
        if consecutiveProbeFailures >= probe.failureThreshold {
            return beginStopping(
                .restart, reason: "health check failed \(consecutiveProbeFailures) times in a row (last: \(detail))")
        }
        state = .unhealthy
        reason = "health check failed (\(consecutiveProbeFailures)/\(probe.failureThreshold)): \(detail)"
        return []
    }

    /// The engine's main process ended (or, for a re-adopted one, vanished).
    public mutating func exited(_ status: ExitStatus, detail: String? = nil, now: Double) -> [Action] {
        lastExit = status
        switch state {
        case .stopping:
            // An exit during stopping is not a crash: it is what we asked for.
            let purpose = stopPurpose ?? .user
            stopPurpose = nil
            if startAfterStop {
                startAfterStop = false
                resetRun()
                restartCount = 0
                restartTimes = []
                state = .starting
                return [.spawn]
            }
            switch purpose {
            case .user, .shutdown:
                state = .stopped
                reason = nil
                return [.resolveWaiters(.stopped)]
            case .startupFailed:
                return fail(reason ?? "not ready within \(startupTimeout)")
            case .restart:
                return restartByPolicy(afterFailure: true, reason: reason ?? "restarted", now: now)
            }
        case .starting where !hasBeenReady:
            return fail("engine \(status) during startup" + (detail.map { ": \($0)" } ?? ""))
        case .starting, .ready, .unhealthy:
            let failure = !status.isSuccess
            return restartByPolicy(afterFailure: failure, reason: "engine \(status)" + (detail.map { ": \($0)" } ?? ""), now: now)
        case .stopped, .backoff, .failed:
            return []
        }
    }

    /// `down`: idempotent; a stop during start aborts the start and kills the half-started engine.
    public mutating func stopRequested() -> [Action] {
        switch state {
        case .starting, .ready, .unhealthy:
            return beginStopping(.user, reason: nil)
        case .stopping:
            startAfterStop = false
            if stopPurpose != .shutdown { stopPurpose = .user }
            return []
        case .backoff:
            state = .stopped
            reason = nil
            return [.cancelRestart, .resolveWaiters(.stopped)]
        case .stopped, .failed:
            return []
        }
    }

    /// The daemon is shutting down and stops its engines.
    public mutating func shutdownRequested() -> [Action] {
        switch state {
        case .starting, .ready, .unhealthy:
            return beginStopping(.shutdown, reason: nil)
        case .stopping:
            startAfterStop = false
            stopPurpose = .shutdown
            return []
        case .backoff:
            state = .stopped
            reason = nil
            return [.cancelRestart, .resolveWaiters(.stopped)]
        case .stopped, .failed:
            return []
        }
    }

    public mutating func backoffElapsed(now: Double) -> [Action] {
        guard state == .backoff else { return [] }
        state = .starting
        consecutiveProbeFailures = 0
        return [.spawn]
    }

    // MARK: Helpers

    private mutating func resetRun() {
        hasBeenReady = false
        readySince = nil
        consecutiveProbeFailures = 0
        stopPurpose = nil
        reason = nil
        startAfterStop = false
        portRetries = 0
    }

    private mutating func beginStopping(_ purpose: StopPurpose, reason: String?) -> [Action] {
        state = .stopping
        stopPurpose = purpose
        if let reason { self.reason = reason }
        let grace = nextStopGrace ?? stopGrace
        nextStopGrace = nil
        return [.terminate(grace: grace)]
    }

    private mutating func fail(_ reason: String) -> [Action] {
        state = .failed
        self.reason = reason
        return [.resolveWaiters(.failed)]
    }

    private mutating func restartByPolicy(afterFailure: Bool, reason: String, now: Double) -> [Action] {
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

    /// initial × factor^attempt, capped at maxDelay.
    public func backoffDelay(forAttempt attempt: Int) -> TimeSpan {
        var delay = restart.initialDelay.seconds
        for _ in 0..<min(attempt, 64) {
            delay *= restart.factor
            if delay >= restart.maxDelay.seconds { return restart.maxDelay }
        }
        return TimeSpan(seconds: min(delay, restart.maxDelay.seconds))
    }
}
