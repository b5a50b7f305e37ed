import AgentronCore
import AgentronHTTP
import FoundationEssentials

extension ControlClient {
    /// `GET /v1/providers`: what the daemon registered in which shared config, and what it
    /// could not write and why (issue #4).
    public func providers(timeout: Duration = ControlClient.requestTimeout) async throws(ClientError) -> ProvidersStatus {
        // ControlClient's transport is private to its file; this is the same request and the
        // same error mapping, kept short.
        let request = HTTPRequest(
            url: "http://localhost\(apiVersionPrefix)/providers", unixSocketPath: socketPath, timeout: timeout,
            connectTimeout: .seconds(5))
        let response: HTTPResponse
        do {
            response = try await HTTPClient.shared.execute(request)
        } catch {
            switch error as? HTTPClientError {
            case .connectionRefused: throw .daemonNotRunning(socket: socketPath)
            case .timedOut(_, let after): throw .daemonNotAnswering(socket: socketPath, after: after)
            case .some(let other): throw .transport("\(other)")
            case .none: throw .transport("\(error)")
            }
        }
        guard (200..<300).contains(response.status) else {
            if let envelope = try? JSONDecoder().decode(APIErrorEnvelope.self, from: Data(response.body)) {
                throw .api(envelope.error)
            }
            throw .badResponse(
                "daemon answered status \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
        do {
            return try JSONDecoder().decode(ProvidersStatus.self, from: Data(response.body))
        } catch {
            throw .badResponse("unexpected reply to GET /providers: \(error)")
        }
    }
}
