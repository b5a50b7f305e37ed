import AgentronCore
import ArgumentParser

/// `agentron`: the thin client. It parses, calls the daemon, renders (a table or `--json`),
/// and shows progress while it waits (docs/architecture.md).
public struct AgentronCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "agentron",
        abstract: "Run and supervise local LLM inference servers (vLLM, Ollama, TGI, any OpenAI-compatible command).",
        discussion: """
            Start a model:       agentron up meta-llama/Llama-3.2-1B-Instruct --engine vllm
            See what runs:       agentron ps
            Read its output:     agentron logs llama-3.2-1b-instruct -f
            Stop it:             agentron down llama-3.2-1b-instruct

            The daemon, agentrond, does the supervising; `up` starts it when none runs.
            AGENTRON_HOME=<dir> keeps the socket, state and profiles under <dir>.
            """,
        version: agentronVersion,
        subcommands: [
            ServerUp.self, ServerPs.self, ServerDown.self, ServerRemove.self, ServerRestart.self, ServerLogs.self,
            ServerInspect.self,
            GatewayCommand.self, ProfileCommand.self, ProviderList.self, ServiceCommand.self, Doctor.self,
        ]
    )

    public init() {}
}

struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "List, show and validate server profiles.",
        discussion: """
            Profiles are YAML files, one per server. They are searched in the built-in
            directory shipped with agentron, then /etc/agentron/profiles, then
            $XDG_CONFIG_HOME/agentron/profiles (later wins on the same name).
            """,
        subcommands: [ProfileList.self, ProfileShow.self, ProfileValidate.self]
    )
}

extension AgentronCommand {
    /// The entry point for the executable. Called from an async function so that the async
    /// `main()` of AsyncParsableCommand is chosen, not ParsableCommand's synchronous one.
    public static func runAsync() async {
        await main()
    }
}
