import AgentronClient
import AgentronCore
import ArgumentParser
import Glibc

struct ServerPs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List servers: name, engine, model, endpoint, state, age, restarts, pid.",
        discussion:
            "Stopped servers are hidden unless --all is given; failed ones stay listed with their reason until `down` or a new `up`.",
        aliases: ["ls"]
    )

    @Flag(name: .shortAndLong, help: "Include stopped servers.")
    var all = false

    @Flag(help: "Print JSON instead of a table (the same as --format json).")
    var json = false

    @Flag(name: .shortAndLong, help: "Print only the servers' names, one per line (the same as --format names).")
    var quiet = false

    enum Layout: String, ExpressibleByArgument, CaseIterable {
        case table, json, names
    }

    @Option(help: "table (default), json, or names (one per line, for scripts).")
    var format: Layout?

    func validate() throws {
        let chosen = [json, quiet, format != nil].filter { $0 }.count
        guard chosen <= 1 else { throw ValidationError("give one of --json, -q/--quiet and --format") }
    }

    func run() async throws {
        let context = CLIContext()
        let servers: [ServerInfo]
        do {
            servers = try await context.client.list(all: all)
        } catch .daemonNotRunning {
            // Nothing runs without the daemon: an empty list is the true answer.
            servers = []
        } catch {
            throw fail(error)
        }
        let layout = format ?? (json ? .json : quiet ? .names : .table)
        if layout == .names {
            Output.writeStdout(Array(servers.map { $0.name + "\n" }.joined().utf8))
            return
        }
        if layout == .json {
            Output.json(
                ServerList(
                    servers: servers, daemon: context.target.socketPath, daemonKind: context.target.kind.rawValue))
            return
        }
        Output.writeStdout(Array(Self.render(servers).utf8))
    }

    /// The table: one row per server, a failing one with its reason (clipped to 60).
    /// Through the gateway: `2 in flight`, or `idle 3m/10m` against the ttl, or `idle 3m`.
    static func requests(_ server: ServerInfo, now: Double) -> String {
        if let inFlight = server.requestsInFlight, inFlight > 0 { return "\(inFlight) in flight" }
        guard let idle = server.idleSeconds else { return "-" }
        let idleText = Format.age(since: now - idle, now: now)
        guard let ttl = server.ttlSeconds else { return "idle \(idleText)" }
        return "idle \(idleText)/\(Format.age(since: now - ttl, now: now))"
    }

    static func render(_ servers: [ServerInfo], now: Double = Double(time(nil))) -> String {
        var table = Table(header: [
            "NAME", "ENGINE", "MODEL", "ENDPOINT", "STATE", "AGE", "RESTARTS", "PID", "REQUESTS",
        ])
        for server in servers {
            var state = server.state.rawValue
            if server.state == .failed || server.state == .unhealthy || server.state == .backoff
                || server.state == .stopped,
                let reason = server.reason
            {
                state += " (\(reason.count > 60 ? String(reason.prefix(59)) + "…" : reason))"
            }
            table.rows.append([
                server.name, server.engine.rawValue, server.model, server.endpoint ?? "-", state,
                Format.age(since: server.startedAt ?? server.since, now: now), String(server.restarts),
                server.pid.map(String.init) ?? "-", requests(server, now: now),
            ])
        }
        return table.render()
    }
}
