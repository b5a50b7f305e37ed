/// The public states of one server (docs/state-machine.md):
///
///     stopped → starting → ready ⇄ unhealthy → stopping → stopped
///                  ↘ backoff → starting …        ↘ failed (gave up; reason kept)
public enum ServerState: String, Codable, Sendable, CaseIterable {
    case stopped
    case starting
    case ready
    case unhealthy
    case backoff
    case stopping
    case failed

    /// Settled states release everyone waiting for "ready": nothing more will happen
    /// without a new request (or a timer, for backoff, which is reported as not ready).
    public var isSettled: Bool {
        switch self {
        case .ready, .stopped, .failed: true
        case .starting, .unhealthy, .backoff, .stopping: false
        }
    }

    /// Whether an engine process is (or may be) running in this state.
    public var hasProcess: Bool {
        switch self {
        case .starting, .ready, .unhealthy, .stopping: true
        case .stopped, .backoff, .failed: false
        }
    }
}

/// How an engine process ended.
public enum ExitStatus: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32)
    /// The process was not our child (re-adopted after a daemon restart): it is gone but its
    /// status cannot be known.
    case unknown

    public var isSuccess: Bool { self == .exited(code: 0) }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal) (\(ExitStatus.signalName(signal)))"
        case .unknown: "exited (status unknown: not a child of this daemon)"
        }
    }

    public static func signalName(_ signal: Int32) -> String {
        switch signal {
        case 1: "SIGHUP"
        case 2: "SIGINT"
        case 3: "SIGQUIT"
        case 4: "SIGILL"
        case 6: "SIGABRT"
        case 7: "SIGBUS"
        case 8: "SIGFPE"
        case 9: "SIGKILL"
        case 11: "SIGSEGV"
        case 13: "SIGPIPE"
        case 15: "SIGTERM"
        default: "signal \(signal)"
        }
    }
}
