// How a ready server is written into the configs apps read (docs/providers.md). Each
// config names engines its own way; a driver says what it is called in each, and which
// of its APIs each is pointed at.

/// The configs agentron registers ready servers in.
public enum RegistrationTarget: String, Sendable, CaseIterable {
    /// agentron's own `providers.json`: an entry's `provider`, the type an app's adapter
    /// knows the engine by.
    case providersFile
    /// OpenClaw's config: a provider's `api`, the client OpenClaw talks to it with.
    case openClaw
    /// The Agentron app's database: `llm_configs.provider`, the adapter the app calls it with.
    case agentronApp

    /// What the target calls any OpenAI-compatible server: an engine's kind unless its
    /// driver says otherwise.
    public var openAICompatibleKind: String {
        switch self {
        case .providersFile, .agentronApp: "custom_http"
        case .openClaw: "openai-completions"
        }
    }
}

/// Which of an engine's APIs a registration points at.
public enum ProviderAPI: Sendable, Equatable {
    /// The OpenAI-compatible routes under `<endpoint>/v1`.
    case openAICompatible
    /// The engine's own API at the endpoint's root, for a target with a client for it
    /// (OpenClaw's for Ollama's `/api/chat`, whose `/v1` route breaks tool calling).
    case native
}
