import AgentronClient
import AgentronCore
import ArgumentParser

/// `agentron providers`: what agentrond registered in the shared provider config (and in
/// OpenClaw's, when that is on), and anything it could not write and why (issue #4).
struct ProviderList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "providers",
        abstract:
            "Show which servers are registered in the shared provider config, and any file that could not be written.",
        discussion: """
            agentrond writes every ready server with `register: true` into
            $XDG_CONFIG_HOME/agentron/providers.json (AGENTRON_PROVIDERS_FILE overrides it),
            into OpenClaw's config when AGENTRON_OPENCLAW_CONFIG names it, and into the
            Agentron app's database when it exists (AGENTRON_APP_DB overrides where). It owns
            only the entries it marks as its own. See docs/providers.md.
            """
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        let context = CLIContext()
        let status: ProvidersStatus
        do {
            status = try await context.client.providers()
        } catch .daemonNotRunning {
            // No daemon, nothing it keeps registered: say so rather than guess from the file.
            if json {
                Output.json(ProvidersStatus(targets: []))
            } else {
                Output.note("agentrond is not running; nothing is being registered")
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

    /// How to turn a target that is off on.
    static func offHint(_ target: ProviderTarget) -> String {
        switch target.kind {
        case ProviderTarget.openClaw:
            return " (set AGENTRON_OPENCLAW_CONFIG=<path to openclaw.json> for agentrond)"
        case ProviderTarget.agentronApp:
            if let path = target.path {
                return " (no database at \(path); agentron never creates it, and writes it once the Agentron app has)"
            }
            return " (set AGENTRON_APP_DB=<path to agentron.sqlite> or AGENTRON_DATA_DIR for agentrond)"
        default:
            return ""
        }
    }

    /// The table, then one line per target that is off, has an error or a snippet.
    static func render(_ status: ProvidersStatus) -> String {
        var table = Table(header: ["TARGET", "PATH", "ID", "MODEL", "ENDPOINT", "STATUS"])
        var notes: [String] = []
        for target in status.targets {
            guard target.enabled, let path = target.path else {
                notes.append("\(target.kind): off" + offHint(target))
                continue
            }
            if target.entries.isEmpty {
                table.rows.append([
                    target.kind, path, "-", "-", "-", target.error == nil ? "(none registered)" : "(not written)",
                ])
            }
            for entry in target.entries {
                table.rows.append([target.kind, path, entry.id, entry.model, entry.endpoint, entry.status ?? "-"])
            }
            if let error = target.error {
                notes.append("\(target.kind): \(error)")
            }
            if let snippet = target.snippet {
                notes.append("\(target.kind): paste this into \(path):\n" + snippet)
            }
        }
        var out = table.render()
        if !notes.isEmpty { out += "\n" + notes.joined(separator: "\n") + "\n" }
        return out
    }
}
