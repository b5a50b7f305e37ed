import AgentronCore
import FoundationEssentials

extension ControlClient {
    /// `GET /v1/providers`: what the daemon registered in which shared config, and what it
    /// could not write and why (issue #4).
    public func providers(timeout: Duration = ControlClient.requestTimeout) async throws(ClientError) -> ProvidersStatus
    {
        // The same transport as every other call: directory check, peer check, error mapping.
        let response = try await send(.providers, body: nil, timeout: timeout)
        do {
            return try JSONDecoder().decode(ProvidersStatus.self, from: Data(response.body))
        } catch {
            throw .badResponse("unexpected reply to GET \(ControlRoute.providers.target): \(error)")
        }
    }
}
