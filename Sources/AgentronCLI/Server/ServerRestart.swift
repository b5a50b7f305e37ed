import AgentronClient
import AgentronCore
import ArgumentParser

struct ServerRestart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Stop a server (if it runs) and start it again with the same settings; clears a failed state.",
        discussion: "Waits until the server is ready again, like `up`."
    )

    @Argument(help: "The server's name.", completion: Completion.servers)
    var name: String

    @Flag(help: "Return once the daemon has accepted; do not wait for ready.")
    var detach = false

    @Flag(help: "Print the server as JSON.")
    var json = false

    func run() async throws {
        let client = CLIContext().client
        var info: ServerInfo
        do {
            info = try await client.restart(name)
            while !detach && !info.state.isSettled {
                info = try await client.wait(name, seconds: 5)
            }
        } catch {
            throw fail(error)
        }
        if json { Output.json(info) }
        if info.state == .failed || (info.state == .stopped && !detach) {
            throw fail(
                "server \"\(name)\" \(info.state.rawValue)\(info.reason.map { ": \($0)" } ?? ""); see: agentron logs \(name)",
                code: ExitStatus.startFailed)
        }
        if !json { print("\(name): \(info.state.rawValue)") }
    }
}
