import AgentronCore
import AgentronHTTP

// What every driver's probes share: one GET that turns transport errors into a short
// reason, and the conversions its messages need.

extension EngineDriver {
    /// A GET that turns transport errors into a failed probe with a short reason.
    func get(_ url: String, timeout: Duration, headers: [(name: String, value: String)] = []) async -> Result<
        HTTPResponse, ProbeFailure
    > {
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

    /// A probe that passes when `path` answers 200: `/health 200`, `/health: status 503`.
    func probeStatus200(_ context: EngineContext, path: String, timeout: Duration) async -> ProbeOutcome {
        switch await get(context.baseURL + path, timeout: timeout) {
        case .failure(let failure): return .failed("\(path): \(failure.reason)")
        case .success(let response) where response.status == 200: return .passed("\(path) 200")
        case .success(let response): return .failed("\(path): status \(response.status)")
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
