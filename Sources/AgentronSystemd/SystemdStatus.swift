import AgentronCore

/// The one-line STATUS= summary shown by `systemctl status agentrond`.
public enum SystemdStatus {
    /// States in the order they are listed: good news first, then what is in progress,
    /// then what needs attention.
    static let order: [ServerState] = [.ready, .starting, .unhealthy, .backoff, .stopping, .failed]

    /// "3 servers: 2 ready, 1 starting"; "no servers" when none is up. Stopped servers are
    /// not counted: they are history, not load.
    public static func line(states: [ServerState]) -> String {
        let counted = states.filter { $0 != .stopped }
        guard !counted.isEmpty else { return "no servers" }
        var counts: [ServerState: Int] = [:]
        for state in counted { counts[state, default: 0] += 1 }
        let parts = order.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }
        let noun = counted.count == 1 ? "server" : "servers"
        return "\(counted.count) \(noun): \(parts.joined(separator: ", "))"
    }
}
