import AgentronCore
import NIOCore

/// Where the gateway listens and who may use it (docs/gateway.md). Loopback port 8400 unless
/// `AGENTRON_GATEWAY` (or agentrond's `--gateway`) says `host:port` or `off`. Any address but
/// loopback needs `AGENTRON_GATEWAY_API_KEY`: the gateway starts engines on demand and
/// carries their keys, so it is not opened to a network without one.
struct GatewayConfig: Sendable, Equatable {
    var host: String
    var port: Int
    /// The key every request must carry as `Authorization: Bearer <key>`; nil: no check.
    var apiKey: String?
    /// How long a free connection may take to deliver a whole request before it is closed
    /// (`AGENTRON_GATEWAY_REQUEST_TIMEOUT`, default 120 s). Waiting for an answer is not
    /// limited: a long generation or a cold start holds its connection as long as it takes.
    var requestTimeout: TimeAmount = .seconds(120)

    static let defaultHost = "127.0.0.1"
    static let defaultPort = 8400
    static let variable = "AGENTRON_GATEWAY"
    static let apiKeyVariable = "AGENTRON_GATEWAY_API_KEY"
    static let requestTimeoutVariable = "AGENTRON_GATEWAY_REQUEST_TIMEOUT"

    /// The gateway's settings from the flag (which wins) or the environment: nil when it is
    /// off, an error line when the setting cannot be used.
    static func resolve(flag: String?, environment: [String: String]) -> Result<GatewayConfig?, GatewayConfigError> {
        let setting = (flag ?? environment[variable] ?? "").trimmingSpaces
        let key = environment[apiKeyVariable].flatMap { $0.isEmpty ? nil : $0 }
        if setting.lowercased() == "off" { return .success(nil) }
        var config = GatewayConfig(host: defaultHost, port: defaultPort, apiKey: key)
        if let text = environment[requestTimeoutVariable] {
            guard let span = TimeSpan(parsing: text), span.seconds > 0, span <= Profile.Limits.maxDuration else {
                return .failure(
                    GatewayConfigError(
                        "\(requestTimeoutVariable)=\(text.clippedForMessage) is not a duration; write it like 120s or 5m"
                    ))
            }
            config.requestTimeout = .nanoseconds(Int64(span.duration / .nanoseconds(1)))
        }
        if !setting.isEmpty {
            guard let (host, port) = parse(setting) else {
                return .failure(
                    GatewayConfigError(
                        "\(flag == nil ? variable : "--gateway")=\(setting.clippedForMessage) is not host:port or off; write it like 127.0.0.1:8400"
                    ))
            }
            config.host = host
            config.port = port
        }
        if !isLoopback(config.host), key == nil {
            return .failure(
                GatewayConfigError(
                    "the gateway on \(config.host):\(config.port) would be reachable from the network without a key; set \(apiKeyVariable), or listen on 127.0.0.1"
                ))
        }
        return .success(config)
    }

    /// `127.0.0.1:8400`, `[::1]:8400`, `:8400` (loopback), `0.0.0.0:80`.
    static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), PortSpec.validRange.contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = defaultHost }
        guard !host.contains(where: { $0 == " " || $0 == "/" || $0 == "[" || $0 == "]" }) else { return nil }
        return (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// `127.0.0.1:8400`, `[::1]:8400`.
    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

struct GatewayConfigError: Error, CustomStringConvertible, Equatable {
    var description: String
    init(_ description: String) { self.description = description }
}
