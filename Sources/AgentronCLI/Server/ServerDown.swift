import AgentronClient
import AgentronCore
import ArgumentParser

struct StopOutcome: Sendable {
    var name: String
    var info: ServerInfo?
    var error: String?
    /// The exit status the error means (ExitStatus).
    var status: Int32 = ExitStatus.success
}

struct ServerDown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop servers and wait until nothing of their engines is left.",
        discussion: """
            SIGTERM goes to the engine's whole process group; after the grace period
            (the profile's stop_timeout, or --timeout) everything left of its process tree
            gets SIGKILL, including processes that left the group. `down` returns when no
            process of the engine remains.
            """,
        aliases: ["stop"]
    )

    @Argument(help: "Names of the servers to stop.", completion: Completion.servers)
    var names: [String] = []

    @Flag(help: "Stop every server.")
    var all = false

    @Option(help: "Grace between SIGTERM and SIGKILL (e.g. 30s), instead of the profile's.", transform: Parse.timeSpan)
    var timeout: TimeSpan?

    @Flag(help: "Print the stopped servers as JSON.")
    var json = false

    func validate() throws {
        if all && !names.isEmpty { throw ValidationError("give server names or --all, not both") }
        if !all && names.isEmpty { throw ValidationError("name the servers to stop, or give --all") }
    }

    func run() async throws {
        let client = CLIContext().client
        var targets = names
        if all {
            do {
                targets = try await client.list(all: false).map(\.name)
            } catch .daemonNotRunning {
                if !json {
                    Output.note("agentrond is not running: nothing to stop")
                } else {
                    Output.json(ServerList(servers: []))
                }
                return
            } catch {
                throw fail(error)
            }
        }
        let timeout = self.timeout
        // Stop in parallel: each waits out its own grace period. Children return plain
        // values (an error as its message): a typed-throws Result crossing the task group
        // crashed release builds.
        let results = await withTaskGroup(of: StopOutcome.self) { group in
            for name in targets {
                group.addTask {
                    do {
                        return StopOutcome(name: name, info: try await client.stop(name, timeout: timeout), error: nil)
                    } catch {
                        return StopOutcome(name: name, info: nil, error: "\(error)", status: ExitStatus.of(error))
                    }
                }
            }
            var collected: [StopOutcome] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.name < $1.name }
        }
        var status = ExitStatus.success
        var stopped: [ServerInfo] = []
        for result in results {
            if let info = result.info {
                stopped.append(info)
                if !json { print("\(result.name): \(info.state.rawValue)") }
            } else {
                status = max(status, result.status)
                Output.error(result.error ?? "cannot stop \(result.name)")
            }
        }
        if json { Output.json(ServerList(servers: stopped)) }
        if status != ExitStatus.success { throw ExitCode(status) }
    }
}
