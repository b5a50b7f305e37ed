import AgentronClient
import ArgumentParser

/// What the shell completes for name arguments (the scripts `--generate-completion-script`
/// writes call back into agentron for these).
enum Completion {
    /// The servers the daemon knows, stopped ones too; none when no daemon answers.
    static let servers = CompletionKind.custom { (_: [String], _: Int, _: String) async -> [String] in
        (try? await CLIContext().client.list(all: true).map(\.name)) ?? []
    }

    /// The profiles on the search path.
    static let profiles = CompletionKind.custom { (_: [String], _: Int, _: String) -> [String] in
        CLIContext().catalog.entries().map(\.name)
    }
}
