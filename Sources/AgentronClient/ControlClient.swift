import AgentronCore
import AgentronHTTP
import FoundationEssentials

/// Typed client of the daemon's control API (DESIGN §7), over the Unix socket.
public struct ControlClient: Sendable {
    public let socketPath: String

    /// Ordinary calls answer at once; a daemon silent this long is hung, not busy.
    public static let requestTimeout: Duration = .seconds(30)
    /// `down` waits for the engine's grace period, which may be minutes (vLLM: up to 90 s).
    public static let stopTimeout: Duration = .seconds(3600)

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    public func daemonInfo(timeout: Duration = ControlClient.requestTimeout) async throws(ClientError) -> DaemonInfo {
        try await call("GET", "/daemon", timeout: timeout)
    }

    public func list(all: Bool) async throws(ClientError) -> [ServerInfo] {
        let list: ServerList = try await call("GET", "/servers" + (all ? "?all=true" : ""))
        return list.servers
    }

    public func start(_ profile: Profile) async throws(ClientError) -> ServerInfo {
        try await call("POST", "/servers", body: StartRequest(profile: profile))
    }

    /// Long-polls until the server settles or `seconds` pass; returns its state either way.
    public func wait(_ name: String, seconds: Double) async throws(ClientError) -> ServerInfo {
        try await call("GET", "/servers/\(escape(name))?wait=\(seconds)", timeout: .seconds(seconds + 30))
    }

    public func inspect(_ name: String) async throws(ClientError) -> ServerInfo {
        try await call("GET", "/servers/\(escape(name))")
    }

    public func stop(_ name: String, timeout: TimeSpan?) async throws(ClientError) -> ServerInfo {
        let query = timeout.map { "?timeout=\($0.seconds)" } ?? ""
        return try await call("POST", "/servers/\(escape(name))/stop\(query)", timeout: Self.stopTimeout)
    }

    /// Stops (if running) and starts the server again; clears a failed state.
    public func restart(_ name: String) async throws(ClientError) -> ServerInfo {
        try await call("POST", "/servers/\(escape(name))/restart", timeout: Self.stopTimeout)
    }

    public func logs(_ name: String, tail: Int) async throws(ClientError) -> [UInt8] {
        let response = try await send("GET", "/servers/\(escape(name))/logs?tail=\(tail)", body: nil, timeout: Self.requestTimeout)
        return response.body
    }

    /// The log tail, then the engine's output as it is written, until cancelled.
    public func followLogs(_ name: String, tail: Int) async throws(ClientError) -> AsyncThrowingStream<[UInt8], any Error> {
        let request = HTTPRequest(
            url: "http://localhost\(apiVersionPrefix)/servers/\(escape(name))/logs?tail=\(tail)&follow=true",
            unixSocketPath: socketPath, connectTimeout: .seconds(5))
        let response: HTTPStreamingResponse
        do {
            response = try await HTTPClient.shared.stream(request)
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

    private func call<T: Decodable>(_ method: String, _ path: String, timeout: Duration = ControlClient.requestTimeout) async throws(ClientError) -> T {
        try await call(method, path, body: Optional<StartRequest>.none, timeout: timeout)
    }

    private func call<T: Decodable, B: Encodable>(
        _ method: String, _ path: String, body: B?, timeout: Duration = ControlClient.requestTimeout
    ) async throws(ClientError) -> T {
        var bytes: [UInt8]?
        if let body {
            do { bytes = Array(try JSONEncoder().encode(body)) } catch {
                throw .badResponse("cannot encode request: \(error)")
            }
        }
        let response = try await send(method, path, body: bytes, timeout: timeout)
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body))
        } catch {
            throw .badResponse("unexpected reply to \(method) \(path): \(error)")
        }
    }

    private func send(_ method: String, _ path: String, body: [UInt8]?, timeout: Duration) async throws(ClientError) -> HTTPResponse {
        var headers: [(name: String, value: String)] = []
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let request = HTTPRequest(
            method: method, url: "http://localhost\(apiVersionPrefix)\(path)", unixSocketPath: socketPath,
            headers: headers, body: body, timeout: timeout, connectTimeout: .seconds(5))
        let response: HTTPResponse
        do {
            response = try await HTTPClient.shared.execute(request)
        } catch {
            throw mapTransport(error)
        }
        guard (200..<300).contains(response.status) else {
            throw decodeError(status: response.status, body: response.body)
        }
        return response
    }

    private func mapTransport(_ error: any Error) -> ClientError {
        switch error as? HTTPClientError {
        case .connectionRefused: .daemonNotRunning(socket: socketPath)
        case .timedOut(_, let after): .daemonNotAnswering(socket: socketPath, after: after)
        case .some(let other): .transport("\(other)")
        case .none: .transport("\(error)")
        }
    }

    private func decodeError(status: Int, body: [UInt8]) -> ClientError {
        if let envelope = try? JSONDecoder().decode(APIErrorEnvelope.self, from: Data(body)) {
            return .api(envelope.error)
        }
        return .badResponse("daemon answered status \(status): \(String(decoding: body.prefix(200), as: UTF8.self))")
    }

    private func escape(_ name: String) -> String {
        // Server names are plain (letters, digits, '-', '_', '.'); anything else is encoded.
        var out = ""
        for byte in name.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isLetter || c.isNumber || c == "-" || c == "_" || c == "." {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

public enum ClientError: Error, CustomStringConvertible, Sendable {
    case daemonNotRunning(socket: String)
    case daemonNotAnswering(socket: String, after: Duration)
    case api(APIError)
    case transport(String)
    case badResponse(String)

    public var description: String {
        switch self {
        case .daemonNotRunning(let socket):
            "agentrond is not running (nothing listens on \(socket)); `agentron up` starts it, or run `agentrond`"
        case .daemonNotAnswering(let socket, let after):
            "agentrond on \(socket) accepted the connection but did not answer within \(after); check its log, or restart it"
        case .api(let error): error.message
        case .transport(let message): "cannot talk to agentrond: \(message)"
        case .badResponse(let message): message
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
