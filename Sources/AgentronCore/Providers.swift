// Wire types of `GET /v1/providers` (issue #4, docs/providers.md): what agentron registered in
// which shared config, and anything it could not write and why.

/// `GET /v1/providers`: one element per target file.
public struct ProvidersStatus: Codable, Sendable, Equatable {
    public var targets: [ProviderTarget]
    public init(targets: [ProviderTarget]) { self.targets = targets }
}

/// One config file agentron keeps true: its own provider file, or OpenClaw's config.
public struct ProviderTarget: Codable, Sendable, Equatable {
    /// The shared provider file (`providers.json`).
    public static let agentron = "agentron"
    /// OpenClaw's config (`models.providers.agentron-<name>`), opt-in.
    public static let openClaw = "openclaw"
    /// The Agentron app's SQLite database (`llm_configs` rows `agentron-<name>`).
    public static let agentronApp = "agentron-app"

    /// `agentron`, `openclaw` or `agentron-app`; a plain string so a newer daemon's kinds
    /// decode too.
    public var kind: String
    /// The file; nil for a target that is off (the Agentron app's: the database looked for,
    /// with `enabled` false while it does not exist).
    public var path: String?
    public var enabled: Bool
    /// agentron-owned entries the file holds as of the last successful read or write.
    public var entries: [ProviderEntryView]
    /// Why the file could not be written, e.g. `not valid JSON at line 3, column 7 (...); left untouched`.
    public var error: String?
    /// OpenClaw's JSON5 case: the text to paste under `models.providers` by hand.
    public var snippet: String?
    /// Unix time agentron last wrote the file.
    public var lastWrite: Double?

    public init(
        kind: String, path: String?, enabled: Bool, entries: [ProviderEntryView], error: String? = nil,
        snippet: String? = nil, lastWrite: Double? = nil
    ) {
        self.kind = kind
        self.path = path
        self.enabled = enabled
        self.entries = entries
        self.error = error
        self.snippet = snippet
        self.lastWrite = lastWrite
    }
}

/// One registered server as a target holds it. Never carries the API key (secrets stay off
/// the wire and out of terminals); `hasApiKey` says whether one is set.
public struct ProviderEntryView: Codable, Sendable, Equatable {
    /// The id in the file: the server name (`agentron-<name>` for OpenClaw).
    public var id: String
    /// `vllm`, `local`, `tgi` or `custom_http` (OpenClaw: `openai-completions`).
    public var provider: String
    /// The URL written: the base URL (OpenClaw: the base URL + `/v1`).
    public var endpoint: String
    public var model: String
    /// `ready`, `unhealthy` or `restarting` (OpenClaw entries carry none: nil).
    public var status: String?
    public var hasApiKey: Bool

    public init(id: String, provider: String, endpoint: String, model: String, status: String?, hasApiKey: Bool) {
        self.id = id
        self.provider = provider
        self.endpoint = endpoint
        self.model = model
        self.status = status
        self.hasApiKey = hasApiKey
    }
}
