// The control API's routes, spelled once for both ends (docs/architecture.md, "The control
// API"): the client turns a route into a request line, the daemon parses a request line back
// into a route. The wire form is the one older CLIs speak; it must not change.

/// One call of the control API: its method, its path under `apiVersionPrefix`, and its
/// query parameters.
///
/// Query values travel as the text that was sent: the daemon validates every one itself
/// (the CLI is one client among many), so parsing a route never refuses a value. Flags
/// (`all`, `force`, `follow`) are true when sent as `true` or `1`, or bare (`?follow`).
public enum ControlRoute: Sendable, Equatable, Hashable {
    /// `GET /v1/daemon`: who answers on the socket (`DaemonInfo`).
    case daemon
    /// `GET /v1/providers`: what the registrar wrote where (`ProvidersStatus`).
    case providers
    /// `GET /v1/gateway`: the gateway's address and counters (`GatewayStatus`).
    case gateway
    /// `GET /v1/servers[?all=true]`: the servers, stopped ones only with `all`.
    case list(all: Bool)
    /// `POST /v1/servers` with a `StartRequest` body.
    case start
    /// `GET /v1/servers/{name}`: one server in detail.
    case inspect(name: String)
    /// `GET /v1/servers/{name}?wait=<seconds>`: long-poll until the server settles.
    case wait(name: String, seconds: String)
    /// `DELETE /v1/servers/{name}[?force=true]`.
    case remove(name: String, force: Bool)
    /// `POST /v1/servers/{name}/stop[?timeout=<span>]`.
    case stop(name: String, timeout: String?)
    /// `POST /v1/servers/{name}/restart`.
    case restart(name: String)
    /// `GET /v1/servers/{name}/connection`: base URL, model and key (`ServerConnection`).
    case connection(name: String)
    /// `GET /v1/servers/{name}/logs[?tail=<lines>][&follow=true]`.
    case logs(name: String, tail: String?, follow: Bool)

    /// The query parameters' names on the wire.
    public enum Parameter: String, Sendable, CaseIterable {
        case all, wait, force, timeout, tail, follow
    }

    /// What a flag is sent as.
    static let flagValue = "true"

    public var method: String {
        switch self {
        case .daemon, .providers, .gateway, .list, .inspect, .wait, .logs, .connection: "GET"
        case .start, .stop, .restart: "POST"
        case .remove: "DELETE"
        }
    }

    /// The path, version prefix included, with the server name percent-encoded.
    public var path: String {
        switch self {
        case .daemon: "\(apiVersionPrefix)/daemon"
        case .providers: "\(apiVersionPrefix)/providers"
        case .gateway: "\(apiVersionPrefix)/gateway"
        case .list, .start: "\(apiVersionPrefix)/servers"
        case .inspect(let name), .wait(let name, _), .remove(let name, _): Self.serverPath(name)
        case .stop(let name, _): Self.serverPath(name) + "/stop"
        case .restart(let name): Self.serverPath(name) + "/restart"
        case .connection(let name): Self.serverPath(name) + "/connection"
        case .logs(let name, _, _): Self.serverPath(name) + "/logs"
        }
    }

    /// The query parameters in the order they are sent (values not yet encoded).
    public var query: [(name: Parameter, value: String)] {
        switch self {
        case .daemon, .providers, .gateway, .start, .inspect, .restart, .connection: []
        case .list(let all): all ? [(.all, Self.flagValue)] : []
        case .wait(_, let seconds): [(.wait, seconds)]
        case .remove(_, let force): force ? [(.force, Self.flagValue)] : []
        case .stop(_, let timeout): timeout.map { [(.timeout, $0)] } ?? []
        case .logs(_, let tail, let follow):
            (tail.map { [(.tail, $0)] } ?? []) + (follow ? [(.follow, Self.flagValue)] : [])
        }
    }

    /// What follows the host in the request's URL: the path, then `?` and the query.
    public var target: String {
        let pairs = query.map { "\($0.name.rawValue)=\(Self.percentEncoded($0.value))" }
        return pairs.isEmpty ? path : path + "?" + pairs.joined(separator: "&")
    }

    private static func serverPath(_ name: String) -> String {
        "\(apiVersionPrefix)/servers/\(percentEncoded(name))"
    }

    // MARK: Parsing (the daemon's side)

    /// Why a request names no route. The daemon answers with `apiError`.
    public enum Mismatch: Error, Sendable, Equatable, CustomStringConvertible {
        /// The path does not start with the version this daemon serves.
        case unversioned(path: String)
        /// No route has this path.
        case unknownPath(method: String, path: String)
        /// The path is a route's, the method is not: 405, naming the methods it takes.
        case methodNotAllowed(method: String, path: String, allowed: [String])

        public var description: String { apiError.message }

        public var apiError: APIError {
            switch self {
            case .unversioned(let path):
                APIError(.notFound, "unknown API path \(path); this daemon serves \(apiVersionPrefix)/...")
            case .unknownPath(let method, let path):
                APIError(.notFound, "no such endpoint: \(method) \(path)")
            case .methodNotAllowed(let method, let path, let allowed):
                APIError(
                    .methodNotAllowed,
                    "\(method) is not allowed on \(path); it takes \(allowed.joined(separator: " or "))")
            }
        }
    }

    /// The route a request names. `path` is the request's path without its query; `query`
    /// is what `parseQuery` made of the rest. Values are not checked here (see the type's
    /// comment): the daemon checks them when it serves the route.
    public init(method: String, path: String, query: [String: String]) throws(Mismatch) {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.first == String(apiVersionPrefix.dropFirst()) else { throw .unversioned(path: path) }
        let route = Array(parts.dropFirst())
        func flag(_ parameter: Parameter) -> Bool {
            query[parameter.rawValue] == "true" || query[parameter.rawValue] == "1"
        }
        func refuse(allowing allowed: [String]) -> Mismatch {
            .methodNotAllowed(method: method, path: path, allowed: allowed)
        }
        switch route.count {
        case 1:
            switch (route[0], method) {
            case ("daemon", "GET"): self = .daemon
            case ("providers", "GET"): self = .providers
            case ("gateway", "GET"): self = .gateway
            case ("servers", "GET"): self = .list(all: flag(.all))
            case ("servers", "POST"): self = .start
            case ("daemon", _), ("providers", _), ("gateway", _): throw refuse(allowing: ["GET"])
            case ("servers", _): throw refuse(allowing: ["GET", "POST"])
            default: throw .unknownPath(method: method, path: path)
            }
        case 2 where route[0] == "servers":
            let name = Self.percentDecoded(route[1])
            switch method {
            case "GET":
                if let seconds = query[Parameter.wait.rawValue] {
                    self = .wait(name: name, seconds: seconds)
                } else {
                    self = .inspect(name: name)
                }
            case "DELETE": self = .remove(name: name, force: flag(.force))
            default: throw refuse(allowing: ["GET", "DELETE"])
            }
        case 3 where route[0] == "servers":
            let name = Self.percentDecoded(route[1])
            switch (route[2], method) {
            case ("stop", "POST"): self = .stop(name: name, timeout: query[Parameter.timeout.rawValue])
            case ("restart", "POST"): self = .restart(name: name)
            case ("logs", "GET"): self = .logs(name: name, tail: query[Parameter.tail.rawValue], follow: flag(.follow))
            case ("connection", "GET"): self = .connection(name: name)
            case ("stop", _), ("restart", _): throw refuse(allowing: ["POST"])
            case ("logs", _), ("connection", _): throw refuse(allowing: ["GET"])
            default: throw .unknownPath(method: method, path: path)
            }
        default:
            throw .unknownPath(method: method, path: path)
        }
    }

    /// Splits a request target (`/v1/servers?all=true`) into its path and its query.
    public static func split(target: String) -> (path: String, query: [String: String]) {
        guard let mark = target.firstIndex(of: "?") else { return (target, [:]) }
        return (String(target[..<mark]), parseQuery(String(target[target.index(after: mark)...])))
    }

    /// `a=1&b&=x&c=%2F`: pairs split on the first `=`, a bare key means "true", an empty key
    /// is ignored, a repeated key keeps its last value. Never indexes past what it split
    /// (`?=` once crashed the daemon, issue #10).
    public static func parseQuery(_ text: String) -> [String: String] {
        var query: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let key: Substring
            let value: Substring?
            if let equals = pair.firstIndex(of: "=") {
                key = pair[..<equals]
                value = pair[pair.index(after: equals)...]
            } else {
                key = pair
                value = nil
            }
            guard !key.isEmpty else { continue }
            query[percentDecoded(String(key))] = value.map { percentDecoded(String($0)) } ?? flagValue
        }
        return query
    }

    // MARK: Percent-encoding

    /// Letters and digits (ASCII), `-`, `_` and `.` as they are; every other byte as `%XX`.
    /// Server names need nothing more (docs/configuration.md, `name`), and a name that
    /// does still reaches the daemon whole, to be refused there by name.
    public static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = String(byte, radix: 16, uppercase: true)
                out += digits.count < 2 ? "%0" + digits : "%" + digits
            }
        }
        return out
    }

    /// `%2F` → `/`, `+` stays, a `%` not followed by two hex digits stays: enough for the
    /// names and numbers in our paths and query strings.
    public static func percentDecoded(_ text: String) -> String {
        let input = Array(text.utf8)
        guard input.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
