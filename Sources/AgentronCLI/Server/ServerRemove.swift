import AgentronClient
import AgentronCore
import ArgumentParser

struct ServerRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Forget stopped servers: their record, state and logs.",
        discussion: """
            `ps --all` lists every server the daemon has run; `rm` removes the ones you no
            longer need, with their log files. A running server is refused unless --force,
            which stops it first (like `down`). Profiles are never touched.
            """
    )

    @Argument(help: "Names of the servers to remove.", completion: Completion.servers)
    var names: [String] = []

    @Flag(help: "Remove every stopped or failed server.")
    var stopped = false

    @Flag(name: .shortAndLong, help: "Stop a running server first instead of refusing.")
    var force = false

    @Flag(help: "Print the removed servers as JSON.")
    var json = false

    func validate() throws {
        if stopped && !names.isEmpty { throw ValidationError("give server names or --stopped, not both") }
        if !stopped && names.isEmpty { throw ValidationError("name the servers to remove, or give --stopped") }
    }

    func run() async throws {
        let client = CLIContext().client
        var targets = names
        if stopped {
            do {
                targets = try await client.list(all: true).filter { $0.state == .stopped || $0.state == .failed }.map(
                    \.name)
            } catch {
                throw fail(error)
            }
        }
        var removed: [ServerInfo] = []
        var failed = false
        for name in targets {
            do {
                removed.append(try await client.remove(name, force: force))
                if !json { print("\(name): removed") }
            } catch {
                failed = true
                Output.error("\(error)")
            }
        }
        if json { Output.json(ServerList(servers: removed)) }
        if failed { throw ExitCode(1) }
    }
}
