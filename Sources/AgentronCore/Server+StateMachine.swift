/// One server's supervision logic as a pure value type: events in, actions out, no I/O
/// (docs/state-machine.md, docs/conventions.md). The daemon's Supervisor feeds it events
/// and performs the actions it returns, deciding nothing itself: whether the user wants the
/// server up, what a new `up` keeps, whether an engine is ours to signal or only attached,
/// which report of an exit counts, what a restored server does next. Time is passed in
/// (`now`, seconds on a monotonic clock) so tests drive it without clocks or processes.
///
/// The events are in Server+StateMachine+Events.swift.
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
        /// No request through the gateway for the profile's `ttl`: end in `stopped`, with
        /// the reason kept so `ps` says why.
        case idle
        /// Another member of its `group` is starting: end in `stopped`, reason kept.
        case preempted
    }

    /// What the engine process of the current run is doing, as far as supervision is
    /// concerned. It decides which report of an exit counts: while the executor terminates
    /// the engine (or reaps what a dead one left), the exit watcher's own report is not news.
    public enum EnginePhase: String, Sendable, Equatable {
        /// No engine: never started, gone, or a spawn in flight.
        case none
        /// Spawned (or attached) and watched.
        case running
        /// Being stopped on our request (`terminate` or `release` is in progress).
        case terminating
        /// Its main process exited by itself; what is left of its tree is being cleaned up
        /// before the exit is judged (`reapRemnants` is in progress).
        case reaping
    }

    public enum Action: Sendable, Equatable {
        /// The start request's profile becomes the server's profile (a new `up` of a server
        /// with no engine may change the spec).
        case applyProfile
        /// Start the engine process (the executor answers with `spawned` or `spawnFailed`).
        case spawn
        /// Use the engine already answering on the profile's port (`adopt: true`) as this
        /// run: never signalled, only probed (answered with `spawned` or `spawnFailed`).
        case attach
        /// Probe for readiness until `startupProbePassed` or the startup timeout.
        case startStartupProbes
        /// Probe liveness at the profile's interval while ready or unhealthy.
        case startLivenessProbes
        /// SIGTERM the engine's group, wait `grace`, SIGKILL everything left of its tree,
        /// then report `exited`.
        case terminate(grace: TimeSpan)
        /// End the supervision of an attached engine, leaving it running; report `released`.
        case release
        /// The main process exited by itself: stop what is left of its tree (vLLM's
        /// EngineCore holding the GPU) and remove what lives outside it, then report
        /// `exited`.
        case reapRemnants
        /// After a daemon restart: kill what is left of an engine that died meanwhile.
        case killRemnants
        /// The last auto port was lost to another program: the next spawn picks another and
        /// says so in the server's log.
        case noteLostPort
        /// Feed `backoffElapsed` after this delay.
        case scheduleRestart(after: TimeSpan)
        /// A scheduled restart is no longer wanted.
        case cancelRestart
        /// Everyone waiting for the outcome of a start is told the settled state.
        case resolveWaiters(ServerState)
    }

    /// The parts of a profile supervision depends on; a new `up` of a server with no
    /// engine replaces them, a running server keeps its own.
    public struct Settings: Sendable, Equatable {
        public var restart: RestartPolicy
        public var probe: ProbeSettings
        public var stopGrace: TimeSpan
        public var startupTimeout: TimeSpan
        /// `adopt: true`: the engine is someone else's, attached rather than spawned.
        public var attach: Bool
        /// The profile's `ttl`: how long a ready server may go without a request.
        public var idleTimeout: TimeSpan?

        public init(profile: Profile) {
            restart = profile.restart
            probe = profile.probe
            stopGrace = profile.stopTimeout
            startupTimeout = profile.startupTimeout
            attach = profile.adopt == true
            idleTimeout = profile.ttl
        }
    }

    /// An engine's report that its port was already in use, and whether another may be
    /// picked (`port: auto`).
    public struct PortLoss: Sendable, Equatable {
        public var reason: String
        public var canPickAnother: Bool

        public init(reason: String, canPickAnother: Bool) {
            self.reason = reason
            self.canPickAnother = canPickAnother
        }
    }

    /// What the state file keeps of a server, to pick it up after a daemon restart.
    public struct Saved: Sendable, Equatable {
        public var state: ServerState
        public var reason: String?
        public var restartCount: Int
        public var totalRestarts: Int
        /// nil for state files written before `wanted` was saved.
        public var wanted: Bool?

        public init(state: ServerState, reason: String?, restartCount: Int, totalRestarts: Int, wanted: Bool?) {
            self.state = state
            self.reason = reason
            self.restartCount = restartCount
            self.totalRestarts = totalRestarts
            self.wanted = wanted
        }
    }

    public internal(set) var state: ServerState = .stopped
    /// Why the server is not ready (or why it failed), for `ps` and `inspect`.
    public internal(set) var reason: String?
    /// Restarts since the last sustained healthy period.
    public internal(set) var restartCount = 0
    /// Restarts over the server's whole life in this daemon, for `ps`: a new `up` keeps it.
    public internal(set) var totalRestarts = 0
    public internal(set) var consecutiveProbeFailures = 0
    public internal(set) var stopPurpose: StopPurpose?
    public internal(set) var lastExit: ExitStatus?
    /// Whether the user wants this server running: set by `up`, `restart` and a blocked
    /// start, cleared by `down`, untouched by the daemon's own shutdown. A server wanted
    /// when the daemon stopped is started again when it starts (`startsAtBoot`).
    public internal(set) var wanted = false
    public internal(set) var engine: EnginePhase = .none
    /// Whether the current run's engine was attached (`adopt: true`) rather than spawned.
    public internal(set) var attached = false
    public internal(set) var settings: Settings

    /// A one-off grace from `down --timeout`, used by the next terminate.
    var nextStopGrace: TimeSpan?
    /// When each recent restart happened, to detect a crash loop within `restart.window`.
    var restartTimes: [Double] = []
    /// Whether this run (since the last start request) has been ready: an exit during the
    /// first start fails at once, an exit after that is a crash handled by the restart policy.
    var hasBeenReady = false
    var readySince: Double?
    /// When this run first became ready (or was re-adopted): where a `ttl` starts counting
    /// when no request has come. Unlike `readySince`, a failed probe does not clear it.
    var servingSince: Double?
    /// An `up` (or `restart`) that arrived while the old engine was still stopping.
    var startAfterStop = false
    /// How often the current start has moved to a new port.
    var portRetries = 0

    /// How often one start may move to a new port after losing its picked one.
    public static let maxPortRetries = 3

    public init(profile: Profile) {
        settings = Settings(profile: profile)
    }

    /// After a daemon restart, a server picked up from the state file. `engineAlive`: its
    /// recorded engine process is still the same running process (the executor re-adopted
    /// it through a pidfd). The actions say what happens next: probes for a live engine
    /// (a stop it was in the middle of goes on), or, for a dead one, its remnants killed
    /// and the loss handled as a crash by the restart policy.
    public static func restored(profile: Profile, saved: Saved, engineAlive: Bool, now: Double) -> (
        ServerStateMachine, [Action]
    ) {
        var machine = ServerStateMachine(profile: profile)
        machine.restartCount = saved.restartCount
        machine.totalRestarts = saved.totalRestarts
        machine.wanted = saved.wanted ?? saved.state.hasProcess
        if engineAlive && saved.state.hasProcess {
            machine.engine = .running
            switch saved.state {
            case .ready, .unhealthy:
                // Liveness probes decide from here; the healthy period starts now.
                machine.state = .ready
                machine.hasBeenReady = true
                machine.readySince = now
                machine.servingSince = now
                return (machine, [.startLivenessProbes])
            case .stopping:
                machine.state = .starting
                let actions = machine.beginStopping(.user, reason: nil)
                return (machine, actions)
            default:
                machine.state = .starting
                return (machine, [.startStartupProbes])
            }
        }
        switch saved.state {
        case .stopped, .failed:
            machine.state = saved.state
            machine.reason = saved.reason
            return (machine, [.killRemnants])
        case .stopping:
            // It was being stopped and is gone: that stop is done.
            return (machine, [.killRemnants])
        case .starting, .ready, .unhealthy, .backoff:
            // Running when the daemon went away: its loss is a crash, handled by policy.
            machine.state = .ready
            machine.hasBeenReady = true
            machine.engine = .running
            let actions = machine.exited(.unknown, detail: "the engine was gone when the daemon restarted", now: now)
            return (machine, [.killRemnants] + actions)
        }
    }

    /// A server the daemon starts when it starts: wanted, and stopped only because the
    /// daemon stopped (cleanly, its engines with it).
    public var startsAtBoot: Bool { wanted && state == .stopped }

    /// `down --timeout D` replaces the profile's grace for the next stop only.
    public mutating func overrideStopGrace(_ grace: TimeSpan) {
        nextStopGrace = grace
    }

    /// initial × factor^attempt, capped at maxDelay.
    public func backoffDelay(forAttempt attempt: Int) -> TimeSpan {
        let restart = settings.restart
        var delay = restart.initialDelay.seconds
        for _ in 0..<min(attempt, 64) {
            delay *= restart.factor
            if delay >= restart.maxDelay.seconds { return restart.maxDelay }
        }
        return TimeSpan(seconds: min(delay, restart.maxDelay.seconds))
    }
}
