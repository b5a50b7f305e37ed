import AgentronClient
import AgentronConfig
import AgentronCore
import ArgumentParser
import Glibc

/// `agentron`: the thin client. It parses, calls the daemon, renders (a table or `--json`),
/// and shows progress while it waits (docs/architecture.md).
public struct AgentronCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "agentron",
        abstract: "Run and supervise local LLM inference servers (vLLM, Ollama, TGI, any OpenAI-compatible command).",
        discussion: """
            Start a model:       agentron up Qwen/Qwen2.5-1.5B-Instruct --engine vllm
            See what runs:       agentron ps
            Read its output:     agentron logs qwen2.5-1.5b-instruct -f
            Stop it:             agentron down qwen2.5-1.5b-instruct

            One OpenAI endpoint for apps: http://127.0.0.1:8400/v1 (`agentron gateway`).

            The daemon, agentrond, does the supervising. The CLI talks to your own daemon
            when it runs, else to the system daemon (`agentron service install`) when its
            socket lets you in, else `up` starts your own. --host <socket> (or
            AGENTRON_HOST=unix:///path) names a daemon's socket instead.
            AGENTRON_HOME=<dir> keeps the socket, state and profiles under <dir>.
            """,
        version: agentronVersion,
        subcommands: [
            ServerUp.self, ServerPs.self, ServerDown.self, ServerRemove.self, ServerRestart.self, ServerLogs.self,
            ServerInspect.self, ServerEnv.self,
            GatewayCommand.self, ProfileCommand.self, ProviderList.self, ExportCommand.self, ServiceCommand.self,
            Doctor.self,
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
    /// `agentron --version` alone is answered here, on the main thread, before the argument
    /// parser (which reflects over every command) and the async runtime's threads start:
    /// scripts call it to check an install, and it should cost about what starting a process
    /// costs (issue #14). The output is the argument parser's: the version, one line.
    public static func answerAtOnce(_ arguments: [String]) -> Bool {
        guard arguments == ["--version"] else { return false }
        print(agentronVersion)
        return true
    }

    /// The entry point for the executable. Called from an async function so that the async
    /// `main()` of AsyncParsableCommand is chosen, not ParsableCommand's synchronous one.
    public static func runAsync() async {
        let arguments: [String]
        do {
            let taken = try takeHost(from: Array(CommandLine.arguments.dropFirst()))
            arguments = taken.arguments
            if let host = taken.host {
                setenv(DaemonTarget.hostVariable, host, 1)  // checked by takeHost
            } else if let host = ProcessEnvironment.current[DaemonTarget.hostVariable], !host.isEmpty {
                _ = try DaemonTarget.socketPath(fromHost: host)
            }
        } catch {
            Output.error("\(error)")
            Glibc.exit(ExitCode.validationFailure.rawValue)
        }
        await main(arguments)
    }

    /// `--host <socket>` (or `--host=<socket>`) anywhere before a `--`, as docker takes
    /// `-H`: taken out of the arguments; `runAsync` sets it as AGENTRON_HOST for this
    /// process, so every command talks to that daemon.
    static func takeHost(from arguments: [String]) throws(DaemonTarget.Invalid) -> (
        arguments: [String], host: String?
    ) {
        var out: [String] = []
        var host: String?
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                out += arguments[index...]
                break
            }
            var value: String?
            if argument == "--host" {
                guard index + 1 < arguments.count else {
                    throw DaemonTarget.Invalid(description: "--host needs a value: the daemon's socket path")
                }
                value = arguments[index + 1]
                index += 2
            } else if argument.hasPrefix("--host=") {
                value = String(argument.dropFirst("--host=".count))
                index += 1
            } else {
                out.append(argument)
                index += 1
                continue
            }
            if let value {
                _ = try DaemonTarget.socketPath(fromHost: value)
                host = value
            }
        }
        return (out, host)
    }
}
