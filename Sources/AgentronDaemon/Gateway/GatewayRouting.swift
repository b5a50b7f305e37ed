import AgentronCore
import Synchronization

/// One server as the gateway sees it: the names that reach it and where to send them.
struct GatewayRoute: Sendable, Equatable {
    var server: String
    /// The profile's model (a Hugging Face id, an Ollama name) and its aliases.
    var model: String
    var aliases: [String]
    /// What the engine serves: the upstream request's `model` becomes this.
    var servedModel: String
    /// Where to connect: the engine's address (loopback for one bound to every address).
    var host: String
    var port: Int?
    /// The engine's own key, added as `Authorization: Bearer` upstream.
    var apiKey: String?
    var state: ServerState
    var reason: String?

    /// Every name a client may send for this server, its own name first.
    var names: [String] {
        var out = [server]
        for name in [model] + aliases where !out.contains(name) { out.append(name) }
        return out
    }

    /// Where the server can take requests now.
    var isServing: Bool { state == .ready || state == .unhealthy }

    /// Whether the server is up or on its way (not stopped by a user, not given up).
    var isLive: Bool {
        switch state {
        case .starting, .ready, .unhealthy, .backoff: true
        case .stopping, .stopped, .failed: false
        }
    }

    /// The address to connect to for an engine bound to `host`.
    static func connectHost(for host: String) -> String {
        switch host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::", "[::]": "::1"
        default: host
        }
    }
}

/// The routes at one moment, indexed by every name. Built by the registry after each change
/// and read by the gateway's event loops without waiting on any actor.
struct GatewayRouting: Sendable {
    private(set) var routes: [GatewayRoute] = []
    private var byServer: [String: Int] = [:]
    private var byName: [String: [Int]] = [:]

    init(routes: [GatewayRoute] = []) {
        self.routes = routes.sorted { $0.server < $1.server }
        for (index, route) in self.routes.enumerated() {
            byServer[route.server] = index
            for name in route.names { byName[name, default: []].append(index) }
        }
    }

    enum Resolution: Equatable {
        case route(GatewayRoute)
        case unknown
        /// The servers the name could mean, sorted.
        case ambiguous([String])
    }

    /// A server's name always means that server. Otherwise a model or alias shared by
    /// several servers means the one that is up when exactly one is; anything else is
    /// ambiguous and the client must name the server.
    func resolve(_ model: String) -> Resolution {
        if let index = byServer[model] { return .route(routes[index]) }
        guard let indices = byName[model], !indices.isEmpty else { return .unknown }
        if indices.count == 1 { return .route(routes[indices[0]]) }
        let live = indices.filter { routes[$0].isLive }
        if live.count == 1 { return .route(routes[live[0]]) }
        return .ambiguous(indices.map { routes[$0].server }.sorted())
    }
}

/// The current routing snapshot, swapped whole by the registry and read per request.
final class GatewayRouter: Sendable {
    private let table = Mutex(GatewayRouting())

    var current: GatewayRouting { table.withLock { $0 } }

    func publish(_ routing: GatewayRouting) {
        table.withLock { $0 = routing }
    }
}

/// Requests in flight through the gateway, and when the last one ended, per server: what
/// the state machine's idle check reads (a profile's `ttl`). Two uncontended lock taps per
/// request.
final class GatewayActivity: Sendable {
    struct Server: Sendable, Equatable {
        var inFlight = 0
        /// Monotonic seconds (the Supervisor's clock) when the last request ended.
        var lastEnded: Double?
    }

    private let servers = Mutex([String: Server]())

    func begin(_ server: String) {
        servers.withLock { $0[server, default: Server()].inFlight += 1 }
    }

    func end(_ server: String) {
        let now = Monotonic.now
        servers.withLock { servers in
            var entry = servers[server] ?? Server()
            entry.inFlight = max(0, entry.inFlight - 1)
            entry.lastEnded = now
            servers[server] = entry
        }
    }

    func current(_ server: String) -> Server {
        servers.withLock { $0[server] ?? Server() }
    }

    /// Requests in flight, by server, for `/metrics`.
    var inFlight: [String: Int] {
        servers.withLock { $0.compactMapValues { $0.inFlight > 0 ? $0.inFlight : nil } }
    }
}
