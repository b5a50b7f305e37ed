import AgentronConfig
import AgentronCore
import FoundationEssentials
import Glibc

/// Typed client of the daemon's control API (docs/architecture.md), over the Unix socket.
///
/// Before every call it checks that nobody else controls the socket's directory
/// (RuntimeDirectory), and it sends nothing to a listener that runs as neither this user
/// nor root (SO_PEERCRED): profiles carry env secrets.
public struct ControlClient: Sendable {
    public let socketPath: String
    /// Checked before every call, parents first: the directories that decide who may put a
    /// socket at `socketPath`.
    public let runtimeDirectories: [String]

    /// Ordinary calls answer at once; a daemon silent this long is hung, not busy.
    public static let requestTimeout: Duration = .seconds(30)
    /// `down` waits for the engine's grace period, which may be minutes (vLLM: up to 90 s).
    public static let stopTimeout: Duration = .seconds(3600)

    /// The socket's own directory is checked; `init(paths:)` adds the /tmp fallback parent.
    public init(socketPath: String) {
        self.socketPath = socketPath
        runtimeDirectories = [FileIO.parentDirectory(of: socketPath)]
    }

    public init(paths: AgentronPaths) {
        socketPath = paths.socketPath
        runtimeDirectories = paths.runtimeDirectoriesToOwn
    }

    public init(target: DaemonTarget) {
        socketPath = target.socketPath
        runtimeDirectories = target.runtimeDirectories
    }

    /// Who may own the runtime directories and run the daemon: this user, or root (the
    /// system daemon, which a member of its socket group may drive; root could read our
    /// secrets anyway).
    static var trustedUIDs: [UInt32] {
        let me = UInt32(getuid())
        return me == 0 ? [0] : [0, me]
    }

    /// Refuses a socket directory that another user could have prepared (RuntimeDirectory).
    func checkRuntimeDirectories() throws(ClientError) {
        for directory in runtimeDirectories {
            do { try RuntimeDirectory.validate(path: directory, owners: Self.trustedUIDs) } catch {
                throw .unsafeRuntimeDirectory(error)
            }
        }
    }

    public func daemonInfo(timeout: Duration = ControlClient.requestTimeout) async throws(ClientError) -> DaemonInfo {
        try await call(.daemon, timeout: timeout)
    }

    /// `GET /v1/servers/{name}/connection`: base URL, model and key for an OpenAI client.
    public func connection(_ name: String) async throws(ClientError) -> ServerConnection {
        try await call(.connection(name: name))
    }

    /// `GET /v1/gateway`: the gateway's address and counters.
    public func gateway() async throws(ClientError) -> GatewayStatus {
        try await call(.gateway)
    }

    public func list(all: Bool) async throws(ClientError) -> [ServerInfo] {
        let list: ServerList = try await call(.list(all: all))
        return list.servers
    }

    public func start(_ profile: Profile) async throws(ClientError) -> ServerInfo {
        try await call(.start, body: StartRequest(profile: profile))
    }

    /// Long-polls until the server settles or `seconds` pass; returns its state either way.
    public func wait(_ name: String, seconds: Double) async throws(ClientError) -> ServerInfo {
        try await call(.wait(name: name, seconds: "\(seconds)"), timeout: .seconds(seconds + 30))
    }

    public func inspect(_ name: String) async throws(ClientError) -> ServerInfo {
        try await call(.inspect(name: name))
    }

    public func stop(_ name: String, timeout: TimeSpan?) async throws(ClientError) -> ServerInfo {
        try await call(.stop(name: name, timeout: timeout.map { "\($0.seconds)" }), timeout: Self.stopTimeout)
    }

    /// Forgets a stopped or failed server (record and logs); `force` stops it first.
    public func remove(_ name: String, force: Bool) async throws(ClientError) -> ServerInfo {
        try await call(.remove(name: name, force: force), timeout: Self.stopTimeout)
    }

    /// Stops (if running) and starts the server again; clears a failed state.
    public func restart(_ name: String) async throws(ClientError) -> ServerInfo {
        try await call(.restart(name: name), timeout: Self.stopTimeout)
    }

    public func logs(_ name: String, tail: Int) async throws(ClientError) -> [UInt8] {
        let response = try await send(
            .logs(name: name, tail: String(tail), follow: false), body: nil, timeout: Self.requestTimeout)
        return response.body
    }

    /// The log tail, then the engine's output as it is written, until cancelled.
    public func followLogs(_ name: String, tail: Int) async throws(ClientError) -> AsyncThrowingStream<
        [UInt8], any Error
    > {
        try checkRuntimeDirectories()
        let route = ControlRoute.logs(name: name, tail: String(tail), follow: true)
        let response: (status: Int, body: AsyncThrowingStream<[UInt8], any Error>)
        do {
            response = try await ControlTransport.stream(
                method: route.method, target: route.target, socketPath: socketPath, trusted: Self.trustedUIDs,
                connectTimeout: Self.connectTimeout)
        } catch {
            throw mapTransport(error)
        }
        guard response.status == 200 else {
            var body: [UInt8] = []
            do {
                for try await chunk in response.body { body += chunk }
            } catch {}
            throw decodeError(status: response.status, body: body)
        }
        return response.body
    }

    // MARK: Transport

    private func call<T: Decodable>(_ route: ControlRoute, timeout: Duration = ControlClient.requestTimeout)
        async throws(ClientError) -> T
    {
        try await call(route, body: Optional<StartRequest>.none, timeout: timeout)
    }

    private func call<T: Decodable, B: Encodable>(
        _ route: ControlRoute, body: B?, timeout: Duration = ControlClient.requestTimeout
    ) async throws(ClientError) -> T {
        var bytes: [UInt8]?
        if let body {
            do { bytes = Array(try JSONEncoder().encode(body)) } catch {
                throw .badResponse("cannot encode request: \(error)")
            }
        }
        let response = try await send(route, body: bytes, timeout: timeout)
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body))
        } catch {
            throw .badResponse("unexpected reply to \(route.method) \(route.target): \(error)")
        }
    }

    /// A daemon that accepts at all accepts at once; a full backlog this long means it is stuck.
    static let connectTimeout: Duration = .seconds(5)

    func send(_ route: ControlRoute, body: [UInt8]?, timeout: Duration) async throws(ClientError)
        -> ControlTransport.Response
    {
        try checkRuntimeDirectories()
        let response: ControlTransport.Response
        do {
            response = try await ControlTransport.execute(
                method: route.method, target: route.target, body: body, socketPath: socketPath,
                trusted: Self.trustedUIDs, connectTimeout: Self.connectTimeout, timeout: timeout)
        } catch {
            throw mapTransport(error)
        }
        guard (200..<300).contains(response.status) else {
            throw decodeError(status: response.status, body: response.body)
        }
        return response
    }

    private func mapTransport(_ error: ControlTransport.Failure) -> ClientError {
        switch error {
        case .cannotConnect:
            // The kernel's answer to a plain connect tells "not running" from "not allowed".
            DaemonTarget.answers(socketPath) == EACCES
                ? .notAllowed(socket: socketPath) : .daemonNotRunning(socket: socketPath)
        case .timedOut(let after): .daemonNotAnswering(socket: socketPath, after: after)
        case .untrustedPeer(let uid): .untrustedDaemon(socket: socketPath, uid: uid)
        case .broken(let message): .transport(message)
        }
    }

    func decodeError(status: Int, body: [UInt8]) -> ClientError {
        if let envelope = try? JSONDecoder().decode(APIErrorEnvelope.self, from: Data(body)) {
            return .api(envelope.error)
        }
        return .badResponse("daemon answered status \(status): \(String(decoding: body.prefix(200), as: UTF8.self))")
    }
}

public enum ClientError: Error, CustomStringConvertible, Sendable {
    case daemonNotRunning(socket: String)
    case daemonNotAnswering(socket: String, after: Duration)
    case api(APIError)
    case transport(String)
    case badResponse(String)
    /// The socket's directory could be controlled by another user; nothing was sent.
    case unsafeRuntimeDirectory(RuntimeDirectory.Refusal)
    /// The process on the socket runs as another user (nil: could not tell); nothing was sent.
    case untrustedDaemon(socket: String, uid: UInt32?)
    /// The socket's mode does not let this user connect (not in its group).
    case notAllowed(socket: String)

    public var description: String {
        switch self {
        case .daemonNotRunning(let socket):
            "agentrond is not running (nothing listens on \(socket)); `agentron up` starts it, or run `agentrond`"
        case .daemonNotAnswering(let socket, let after):
            "agentrond on \(socket) accepted the connection but did not answer within \(after); check its log, or restart it"
        case .api(let error): error.message
        case .transport(let message): "cannot talk to agentrond: \(message)"
        case .badResponse(let message): message
        case .unsafeRuntimeDirectory(let refusal): refusal.description
        case .notAllowed(let socket):
            "you may not use the agentrond at \(socket) (permission denied: its socket lets in root and its group); ask an administrator to add you to the group (sudo usermod -aG agentron \(DaemonTarget.userName())), then log in again"
        case .untrustedDaemon(let socket, let uid?):
            "the daemon at \(socket) runs as uid \(uid), not as you or root; refusing to send it anything; remove the socket or set AGENTRON_HOME / XDG_RUNTIME_DIR"
        case .untrustedDaemon(let socket, nil):
            "cannot tell which user runs the daemon at \(socket) (SO_PEERCRED failed); refusing to send it anything; remove the socket or set AGENTRON_HOME / XDG_RUNTIME_DIR"
        }
    }
}
