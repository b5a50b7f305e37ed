import AgentronCore

// The values that pass between a driver and the supervisor: what a launch or a probe is
// about (EngineContext), and what comes back (LaunchSpec, ProbeOutcome, EngineError).

/// What a driver needs to know to launch and probe one server.
public struct EngineContext: Sendable {
    public var profile: Profile
    /// The resolved port (never `auto` here).
    public var port: Int
    /// The daemon's own environment, from which the child's allow-list is taken.
    public var daemonEnvironment: [String: String]
    /// Which daemon this is (its state directory): labels its containers, so one daemon
    /// never removes another's.
    public var instance: String
    /// The daemon's state directory (`/var/lib/agentron` for the system daemon): where an
    /// engine keeps what must outlive one run when nothing else says where (Ollama's models
    /// under the system unit, which sets no HOME). Empty when unknown.
    public var stateDirectory: String

    public init(
        profile: Profile, port: Int, daemonEnvironment: [String: String], instance: String = "",
        stateDirectory: String = ""
    ) {
        self.profile = profile
        self.port = port
        self.daemonEnvironment = daemonEnvironment
        self.instance = instance
        self.stateDirectory = stateDirectory
    }

    /// Base URL of the engine's HTTP API: `http://127.0.0.1:8001`, `http://[::1]:8001`. A
    /// server bound to all interfaces is still reached over loopback. An IPv6 literal is
    /// bracketed (RFC 3986): `http://::1:8001` is no URL, and every app this is registered
    /// with would fail to parse it.
    public var baseURL: String {
        let host = profile.host == "0.0.0.0" || profile.host == "::" ? "127.0.0.1" : profile.host
        return "http://\(Self.urlHost(host)):\(port)"
    }

    /// `host` as the authority of a URL: an IPv6 literal (anything holding a colon) in
    /// brackets, unless it already has them.
    public static func urlHost(_ host: String) -> String {
        guard host.contains(":"), !host.hasPrefix("[") else { return host }
        return "[" + host + "]"
    }
}

/// How to start an engine process.
public struct LaunchSpec: Sendable, Equatable {
    public var arguments: [String]
    public var environment: [String: String]

    public init(arguments: [String], environment: [String: String]) {
        self.arguments = arguments
        self.environment = environment
    }
}

/// One probe's verdict.
public enum ProbeOutcome: Sendable, Equatable {
    case passed(String)
    /// Not (yet) healthy; the detail says why ("connection refused", "status 503").
    case failed(String)

    public var passed: Bool {
        if case .passed = self { return true }
        return false
    }

    public var detail: String {
        switch self {
        case .passed(let detail), .failed(let detail): detail
        }
    }
}

/// The HTTP paths a driver's probes ask (docs/engines.md, "ready when" and "alive when"):
/// tests and messages read them here, and the probes ask exactly these.
public struct ProbePaths: Sendable, Equatable {
    /// Asked until the engine answers at all, before `prepare`; nil for an engine without
    /// preparation, whose readiness probe is also its serving probe.
    public var serving: String?
    /// Asked in this order on every readiness probe; each must pass.
    public var readiness: [String]
    /// Asked every `probe.interval` once ready.
    public var liveness: String

    public init(serving: String? = nil, readiness: [String], liveness: String) {
        self.serving = serving
        self.readiness = readiness
        self.liveness = liveness
    }
}

public enum EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The engine's program is not installed; `hint` says how to install it.
    case notInstalled(engine: EngineKind, program: String, hint: String)
    case unsupported(engine: EngineKind, what: String)
    case invalidProfile(String)
    /// The engine runs but cannot become ready; the message is the engine's own where it gave one.
    case startFailed(String)

    public var description: String {
        switch self {
        case .notInstalled(let engine, let program, let hint):
            "engine \(engine.rawValue): `\(program)` is not on PATH; \(hint)"
        case .unsupported(let engine, let what):
            "engine \(engine.rawValue): \(what) is not supported yet"
        case .invalidProfile(let message), .startFailed(let message):
            message
        }
    }
}
