/// `GET /v1/gateway`: the gateway's address and counters since the daemon started
/// (`agentron gateway`; docs/gateway.md). The same counters are on the gateway's own
/// `/metrics` in Prometheus' text format.
public struct GatewayStatus: Codable, Sendable, Equatable {
    /// `127.0.0.1:8400`; nil when the gateway is off (`AGENTRON_GATEWAY=off`).
    public var address: String?
    public var listening: Bool
    /// Why it does not listen (a taken port), when it does not.
    public var error: String?
    /// Whether clients must send `Authorization: Bearer <AGENTRON_GATEWAY_API_KEY>`.
    public var keyRequired: Bool
    /// Requests answered, by the model the client named and the HTTP status.
    public var requests: [RequestCount]
    /// Requests being forwarded now, by server.
    public var inFlight: [String: Int]
    /// Requests waiting for their server to start.
    public var held: Int
    /// Starts that requests waited for, by model and outcome (`ready`, `failed`).
    public var starts: [StartCount]
    /// Every server and startable profile, with the names that reach it.
    public var routes: [Route]

    public struct RequestCount: Codable, Sendable, Equatable {
        public var model: String
        public var status: Int
        public var count: Int

        public init(model: String, status: Int, count: Int) {
            self.model = model
            self.status = status
            self.count = count
        }
    }

    public struct StartCount: Codable, Sendable, Equatable {
        public var model: String
        public var outcome: String
        public var count: Int

        public init(model: String, outcome: String, count: Int) {
            self.model = model
            self.outcome = outcome
            self.count = count
        }
    }

    public struct Route: Codable, Sendable, Equatable {
        /// The server's name (for a profile with no server yet, the profile's).
        public var server: String
        /// Every name a request may use for it, the server's own first.
        public var names: [String]
        public var state: ServerState

        public init(server: String, names: [String], state: ServerState) {
            self.server = server
            self.names = names
            self.state = state
        }
    }

    public init(
        address: String?, listening: Bool, error: String?, keyRequired: Bool, requests: [RequestCount],
        inFlight: [String: Int], held: Int, starts: [StartCount], routes: [Route]
    ) {
        self.address = address
        self.listening = listening
        self.error = error
        self.keyRequired = keyRequired
        self.requests = requests
        self.inFlight = inFlight
        self.held = held
        self.starts = starts
        self.routes = routes
    }
}

/// `GET /v1/servers/{name}/connection`: what an OpenAI client needs to use a server, or a
/// model through the gateway (`agentron env`). Carries the key: whoever may use the control
/// socket may read the profile anyway.
public struct ServerConnection: Codable, Sendable, Equatable {
    /// The server's name, or the model name asked for through the gateway.
    public var name: String
    /// Ends in `/v1`: what an OpenAI SDK takes as its base URL.
    public var baseUrl: String
    /// What to send as `model`.
    public var model: String
    /// The key the endpoint needs; nil when it needs none.
    public var apiKey: String?
    /// `server` (the engine itself) or `gateway` (a profile or alias with no server up).
    public var via: String

    public init(name: String, baseUrl: String, model: String, apiKey: String?, via: String) {
        self.name = name
        self.baseUrl = baseUrl
        self.model = model
        self.apiKey = apiKey
        self.via = via
    }
}
