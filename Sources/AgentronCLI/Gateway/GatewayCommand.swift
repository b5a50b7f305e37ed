import AgentronClient
import AgentronCore
import ArgumentParser

/// `agentron gateway`: where the one OpenAI endpoint listens, what it routes, and its
/// counters since the daemon started (docs/gateway.md).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Show the gateway's address, the names it routes and its request counters.",
        discussion: """
            agentrond serves one OpenAI-compatible endpoint for every model, on
            http://127.0.0.1:8400/v1 unless AGENTRON_GATEWAY=<host:port> or off is set for the
            daemon. A request's `model` (a server's name, a profile's model or one of its
            aliases) picks the server; a stopped one is started on demand. The same counters
            are served in Prometheus' text format on the gateway's /metrics. See docs/gateway.md.
            """
    )

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let context = CLIContext()
        let status: GatewayStatus
        do {
            status = try await context.client.gateway()
        } catch .daemonNotRunning {
            let none = GatewayStatus(
                address: nil, listening: false, error: "agentrond is not running", keyRequired: false, requests: [],
                inFlight: [:], held: 0, starts: [], routes: [])
            if json {
                Output.json(none)
            } else {
                Output.note("agentrond is not running; the gateway is part of it (`agentron up` starts one)")
            }
            return
        } catch {
            throw fail(error)
        }
        if json {
            Output.json(status)
            return
        }
        Output.writeStdout(Array(Self.render(status).utf8))
    }

    static func render(_ status: GatewayStatus) -> String {
        guard let address = status.address else {
            return "gateway   off (AGENTRON_GATEWAY=off for agentrond)\n"
        }
        var out = "gateway   http://\(address)/v1"
        if status.listening {
            out += status.keyRequired ? " (key required: AGENTRON_GATEWAY_API_KEY)\n" : " (no key)\n"
        } else {
            out += " NOT LISTENING: \(status.error ?? "unknown reason")\n"
            out += "          set AGENTRON_GATEWAY=host:port (or off) for agentrond; see `agentron doctor`\n"
        }
        var byClass: [Int: Int] = [:]
        for count in status.requests { byClass[count.status / 100, default: 0] += count.count }
        let answered = byClass.values.reduce(0, +)
        let classes = byClass.keys.sorted().map { "\(byClass[$0] ?? 0) \($0)xx" }
        let inFlight = status.inFlight.values.reduce(0, +)
        out += "requests  \(answered) answered"
        if !classes.isEmpty { out += " (" + classes.joined(separator: ", ") + ")" }
        out += ", \(inFlight) in flight, \(status.held) held\n"
        if !status.starts.isEmpty {
            var byOutcome: [String: Int] = [:]
            for start in status.starts { byOutcome[start.outcome, default: 0] += start.count }
            out += "starts    " + byOutcome.keys.sorted().map { "\(byOutcome[$0] ?? 0) \($0)" }.joined(separator: ", ")
            out += "\n"
        }
        guard !status.routes.isEmpty else {
            return out
                + "\nno servers or profiles to route to; add a profile (`agentron profiles ls`) or `agentron up`\n"
        }
        var table = Table(header: ["SERVER", "STATE", "IN FLIGHT", "MODEL NAMES"])
        for route in status.routes {
            table.rows.append([
                route.server, route.state.rawValue, "\(status.inFlight[route.server] ?? 0)",
                route.names.joined(separator: ", "),
            ])
        }
        return out + "\n" + table.render()
    }
}
