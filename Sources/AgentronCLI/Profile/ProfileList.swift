import AgentronCore
import ArgumentParser

struct ProfileList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the profiles on the search path, invalid ones with their error.",
        aliases: ["ls"]
    )

    @Flag(help: "Print JSON.")
    var json = false

    struct Row: Encodable {
        var name: String
        var path: String
        var origin: String
        var engine: String?
        var model: String?
        var error: String?
        var shadows: [String]
    }

    func run() async throws {
        let entries = CLIContext().catalog.entries()
        let rows = entries.map { entry in
            Row(
                name: entry.name, path: entry.path, origin: entry.origin.description,
                engine: entry.profile?.engine.rawValue, model: entry.profile?.model,
                error: entry.error?.description, shadows: entry.shadows)
        }
        if json {
            Output.json(rows)
            return
        }
        var table = Table(header: ["NAME", "ENGINE", "MODEL", "SOURCE"])
        for row in rows {
            table.rows.append([row.name, row.engine ?? "INVALID", row.model ?? (row.error ?? ""), row.path])
        }
        Output.writeStdout(Array(table.render().utf8))
    }
}
