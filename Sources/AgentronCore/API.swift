// Types of the control API (docs/architecture.md): HTTP/1.1 + JSON on a Unix socket, versioned paths.
// Both the daemon and the CLI link AgentronCore, so the wire shape lives in one place.

/// The API version prefix of every path.
public let apiVersionPrefix = "/v1"

/// `POST /v1/servers`: start (or confirm) a server.
public struct StartRequest: Codable, Sendable {
    public var profile: Profile
    public init(profile: Profile) { self.profile = profile }
}

/// One probe's outcome, kept for `inspect`.
public struct ProbeResult: Codable, Sendable, Equatable {
    public var at: Double  // Unix time
    public var passed: Bool
    public var detail: String
    public init(at: Double, passed: Bool, detail: String) {
        self.at = at
        self.passed = passed
        self.detail = detail
    }
}

/// Progress of slow startup work the engine reports (an Ollama pull), shown by `up`.
public struct EngineProgress: Codable, Sendable, Equatable {
    /// What is happening, in the engine's words ("pulling manifest", "downloading 2bada8a7").
    public var phase: String
    public var completed: Int64?
    public var total: Int64?

    public init(phase: String, completed: Int64? = nil, total: Int64? = nil) {
        self.phase = phase
        self.completed = completed
        self.total = total
    }
}

/// One state change, kept for `inspect`.
public struct StateChange: Codable, Sendable, Equatable {
    public var at: Double  // Unix time
    public var state: ServerState
    public var reason: String?
    public init(at: Double, state: ServerState, reason: String?) {
        self.at = at
        self.state = state
        self.reason = reason
    }
}

/// What `ps` and `inspect` show of one server.
public struct ServerInfo: Codable, Sendable, Equatable {
    public var name: String
    public var engine: EngineKind
    public var model: String
    /// The name clients put in requests.
    public var servedModel: String
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8001`.
    public var endpoint: String?
    public var port: Int?
    public var state: ServerState
    public var reason: String?
    public var pid: Int32?
    /// Unix time the current engine process started (nil when none runs).
    public var startedAt: Double?
    /// Unix time of the last state change.
    public var since: Double
    public var restarts: Int
    public var lastExit: ExitStatus?
    /// The engine's most recent log line (progress display while starting).
    public var lastLogLine: String?
    /// Slow startup work in progress (an Ollama pull), while starting.
    public var progress: EngineProgress?
    /// The resolved profile, secrets redacted. Only filled by `inspect`.
    public var profile: Profile?
    public var history: [StateChange]?
    public var probes: [ProbeResult]?
    /// The engine's last log lines, filled when it failed.
    public var logTail: [String]?
    /// Requests the gateway is forwarding to it now (nil: none, or no gateway).
    public var requestsInFlight: Int?
    /// Seconds since its last gateway request ended, or since it became ready when none
    /// came; nil when it is not ready.
    public var idleSeconds: Double?
    /// The profile's `ttl` in seconds, when it has one.
    public var ttlSeconds: Double?

    public init(
        name: String, engine: EngineKind, model: String, servedModel: String, endpoint: String?, port: Int?,
        state: ServerState, reason: String?, pid: Int32?, startedAt: Double?, since: Double, restarts: Int,
        lastExit: ExitStatus?, lastLogLine: String?, profile: Profile? = nil, history: [StateChange]? = nil,
        probes: [ProbeResult]? = nil, logTail: [String]? = nil
    ) {
        self.name = name
        self.engine = engine
        self.model = model
        self.servedModel = servedModel
        self.endpoint = endpoint
        self.port = port
        self.state = state
        self.reason = reason
        self.pid = pid
        self.startedAt = startedAt
        self.since = since
        self.restarts = restarts
        self.lastExit = lastExit
        self.lastLogLine = lastLogLine
        self.profile = profile
        self.history = history
        self.probes = probes
        self.logTail = logTail
    }
}

public struct ServerList: Codable, Sendable {
    public var servers: [ServerInfo]
    /// The daemon's socket, and whose daemon it is (`own`, `system`, `host`): set by the CLI
    /// (`ps --json`), not sent by the daemon.
    public var daemon: String?
    public var daemonKind: String?
    public init(servers: [ServerInfo], daemon: String? = nil, daemonKind: String? = nil) {
        self.servers = servers
        self.daemon = daemon
        self.daemonKind = daemonKind
    }
}

/// `GET /v1/daemon`: who answers on the socket.
public struct DaemonInfo: Codable, Sendable {
    public var version: String
    public var pid: Int32
    public var socket: String
    public var stateDirectory: String
    public var startedAt: Double
    /// The gateway's address (`127.0.0.1:8400`); nil when it is off.
    public var gateway: String?
    /// Whether the gateway listens; false with `gatewayError` when its port was taken.
    public var gatewayListening: Bool?
    public var gatewayError: String?
    public init(version: String, pid: Int32, socket: String, stateDirectory: String, startedAt: Double) {
        self.version = version
        self.pid = pid
        self.socket = socket
        self.stateDirectory = stateDirectory
        self.startedAt = startedAt
    }
}

/// Errors across the wire: `{"error":{"code","message"}}`. Unknown codes decode to
/// `.unknown` instead of failing, so an older CLI understands a newer daemon.
public struct APIError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable, Hashable, Codable, RawRepresentable {
        case notFound
        case conflict
        case invalidRequest
        case startFailed
        case portInUse
        case engineNotFound
        case internalError
        /// The connecting user may not drive this daemon (SO_PEERCRED). Older clients decode
        /// it as `.unknown("forbidden")` and still show the message.
        case forbidden
        /// The path is a route's but the method is not (405). Older clients decode it as
        /// `.unknown("method_not_allowed")` and still show the message.
        case methodNotAllowed
        case unknown(String)

        public init(rawValue: String) {
            switch rawValue {
            case "not_found": self = .notFound
            case "conflict": self = .conflict
            case "invalid_request": self = .invalidRequest
            case "start_failed": self = .startFailed
            case "port_in_use": self = .portInUse
            case "engine_not_found": self = .engineNotFound
            case "internal_error": self = .internalError
            case "forbidden": self = .forbidden
            case "method_not_allowed": self = .methodNotAllowed
            default: self = .unknown(rawValue)
            }
        }

        public var rawValue: String {
            switch self {
            case .notFound: "not_found"
            case .conflict: "conflict"
            case .invalidRequest: "invalid_request"
            case .startFailed: "start_failed"
            case .portInUse: "port_in_use"
            case .engineNotFound: "engine_not_found"
            case .internalError: "internal_error"
            case .forbidden: "forbidden"
            case .methodNotAllowed: "method_not_allowed"
            case .unknown(let raw): raw
            }
        }

        public init(from decoder: any Decoder) throws {
            self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        /// The HTTP status this code is sent with.
        public var httpStatus: Int {
            switch self {
            case .notFound: 404
            case .conflict, .portInUse: 409
            case .invalidRequest, .engineNotFound: 400
            case .startFailed: 422
            case .forbidden: 403
            case .methodNotAllowed: 405
            case .internalError, .unknown: 500
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The envelope an error travels in.
public struct APIErrorEnvelope: Codable, Sendable {
    public var error: APIError
    public init(error: APIError) { self.error = error }
}
