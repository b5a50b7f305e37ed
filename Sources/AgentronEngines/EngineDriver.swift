import AgentronCore
import AgentronHTTP
import AgentronProcess

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

    public init(profile: Profile, port: Int, daemonEnvironment: [String: String], instance: String = "", stateDirectory: String = "") {
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

/// An engine driver: how to build the launch, how to probe readiness and liveness
/// (docs/architecture.md).
public protocol EngineDriver: Sendable {
    var kind: EngineKind { get }
    /// The program that must be on PATH, and how to get it when it is not.
    var program: String { get }
    var installHint: String { get }
    func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec
    /// Ready means the engine's own health endpoint passed AND the served model is listed.
    func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome
    func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome

    /// Whether there is work between "the engine answers" and "ready" (Ollama: pull and
    /// load the model). When true, startup is: `probeServing` until it passes, then
    /// `prepare`, then `probeReadiness` until it passes.
    var needsPreparation: Bool { get }
    /// The engine process answers at all (Ollama: `GET /` 200).
    func probeServing(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome
    /// The slow work before ready, reporting progress as it goes. A thrown error ends the
    /// start with its message (e.g. Ollama's own "pull model manifest: file does not exist").
    func prepare(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void) async throws(EngineError)

    /// After the engine's process tree is gone (stopped or crashed): remove what lives
    /// outside it (TGI: the container, if its shim was killed before it could).
    func cleanup(_ context: EngineContext) async

    /// Whether the engine's own process tree holds its listening socket, so that a
    /// listener outside the tree is someone else's (issue #10). False where the port is
    /// published by another program (TGI: Docker's proxy).
    var listensInProcessTree: Bool { get }
    /// How strictly the listener on the engine's port must be the engine's own before a
    /// probe is sent to it.
    var listenerCheck: Ports.ListenerCheck { get }
}

extension EngineDriver {
    public var needsPreparation: Bool { false }
    public var listensInProcessTree: Bool { true }
    public var listenerCheck: Ports.ListenerCheck { listensInProcessTree ? .processTree : .none }

    public func probeServing(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeReadiness(context, timeout: timeout)
    }

    public func prepare(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void) async throws(EngineError) {}

    public func cleanup(_ context: EngineContext) async {}
}

public enum Engines {
    public static func driver(for kind: EngineKind) throws(EngineError) -> any EngineDriver {
        switch kind {
        case .vllm: VLLMEngine()
        case .ollama: OllamaEngine()
        case .command: CommandEngine()
        case .tgi: TGIEngine()
        }
    }
}

extension EngineDriver {
    /// A GET that turns transport errors into a failed probe with a short reason.
    func get(_ url: String, timeout: Duration, headers: [(name: String, value: String)] = []) async -> Result<HTTPResponse, ProbeFailure> {
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPRequest(url: url, headers: headers, timeout: timeout, connectTimeout: timeout))
            return .success(response)
        } catch let error as HTTPClientError {
            switch error {
            case .connectionRefused: return .failure(ProbeFailure("connection refused"))
            case .timedOut: return .failure(ProbeFailure("no answer within \(TimeSpan(seconds: timeout.seconds))"))
            case .emptyReply: return .failure(ProbeFailure("connection closed without a reply"))
            case .transport(_, _, let message): return .failure(ProbeFailure(message))
            case .untrustedPeer: return .failure(ProbeFailure("\(error)"))
            }
        } catch {
            return .failure(ProbeFailure("\(error)"))
        }
    }
}

struct ProbeFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension Duration {
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
