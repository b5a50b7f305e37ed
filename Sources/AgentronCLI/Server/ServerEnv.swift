import AgentronClient
import AgentronCore
import ArgumentParser

/// `agentron env <name>`: the settings an OpenAI client needs, as shell `export` lines, so
/// `eval "$(agentron env qwen)"` configures any OpenAI SDK (docs/providers.md).
struct ServerEnv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Print OPENAI_BASE_URL, OPENAI_MODEL (and the key) for a server, as export lines.",
        discussion: """
            eval "$(agentron env qwen)" and then any OpenAI SDK or tool that reads
            OPENAI_BASE_URL, OPENAI_MODEL and OPENAI_API_KEY talks to that server. A name that
            is no server but a profile or alias the gateway routes gets the gateway's address.
            A server that needs a key: its key is printed only with --show-key (it then sits in
            your shell's environment); without a key, OPENAI_API_KEY is set to `none`, since
            the SDKs refuse to start without one.
            """
    )

    @Argument(help: "A server's name, or a model name the gateway routes.", completion: Completion.servers)
    var name: String

    @Flag(help: "Also print the server's API key.")
    var showKey = false

    @Flag(help: "Print JSON instead of export lines.")
    var json = false

    /// What the SDKs are given when the server needs no key: any value satisfies them.
    static let noKey = "none"

    func run() async throws {
        let connection: ServerConnection
        do {
            connection = try await CLIContext().client.connection(name)
        } catch {
            throw fail(error)
        }
        let variables = Self.variables(connection, showKey: showKey)
        if connection.apiKey != nil && !showKey {
            Output.note(
                "\(name) needs an API key: add --show-key to print OPENAI_API_KEY (it then sits in your shell's environment)"
            )
        }
        if json {
            var object: [String: String] = [:]
            for (key, value) in variables { object[key] = value }
            Output.json(object)
            return
        }
        let lines = variables.map { "export \($0.0)=\(Self.shellQuoted($0.1))\n" }.joined()
        Output.writeStdout(Array(lines.utf8))
    }

    static func variables(_ connection: ServerConnection, showKey: Bool) -> [(String, String)] {
        var out = [("OPENAI_BASE_URL", connection.baseUrl), ("OPENAI_MODEL", connection.model)]
        if let key = connection.apiKey {
            if showKey { out.append(("OPENAI_API_KEY", key)) }
        } else {
            out.append(("OPENAI_API_KEY", noKey))
        }
        return out
    }

    /// 'text', with each ' written as '\'' : safe for eval in any POSIX shell.
    static func shellQuoted(_ text: String) -> String {
        var out = "'"
        for character in text { out += character == "'" ? "'\\''" : String(character) }
        return out + "'"
    }
}
