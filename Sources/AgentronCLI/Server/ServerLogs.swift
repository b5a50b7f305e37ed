import AgentronClient
import AgentronCore
import ArgumentParser

struct ServerLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a server's engine output (stdout and stderr), captured by the daemon.",
        discussion: "The daemon keeps each engine's output in size-capped rotating files in its state directory."
    )

    @Argument(help: "The server's name.", completion: Completion.servers)
    var name: String

    @Flag(name: .shortAndLong, help: "Keep printing new output until interrupted.")
    var follow = false

    // -n as in tail(1) and docker; not -t, which is docker's --timestamps.
    @Option(name: [.customShort("n"), .long], help: "How many of the last lines to print first.")
    var tail: Int = 100

    func validate() throws {
        if tail < 0 { throw ValidationError("--tail must be 0 or more") }
    }

    func run() async throws {
        let client = CLIContext().client
        do {
            if follow {
                for try await chunk in try await client.followLogs(name, tail: tail) {
                    Output.writeStdout(chunk)
                }
            } else {
                Output.writeStdout(try await client.logs(name, tail: tail))
            }
        } catch let error as ClientError {
            throw fail(error)
        } catch {
            throw fail("log stream ended: \(error)")
        }
    }
}
