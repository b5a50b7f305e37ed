import AgentronConfig
import AgentronCore
import Glibc

/// One server as the shared provider config should show it (issue #4).
public struct RegisteredServer: Sendable, Equatable {
    /// The server name: the entry's id.
    public var name: String
    public var engine: EngineKind
    /// The base URL the app's OpenAI-compatible adapter appends `/v1/chat/completions` to,
    /// e.g. `http://127.0.0.1:8001`.
    public var endpoint: String
    /// Exactly the name the engine serves (vLLM answers 404 to any other).
    public var model: String
    public var apiKey: String?
    /// `ready`, `unhealthy` or `restarting`.
    public var status: String
    /// Tokens the server's context holds, when known (its driver's `contextLength`).
    public var contextLength: Int?
    /// Set only for the gateway's entry (id `agentron`): every model name it routes. That
    /// entry goes to providers.json only (docs/gateway.md).
    public var gatewayModels: [String]?

    public init(
        name: String, engine: EngineKind, endpoint: String, model: String, apiKey: String?, status: String,
        contextLength: Int? = nil, gatewayModels: [String]? = nil
    ) {
        self.name = name
        self.engine = engine
        self.endpoint = endpoint
        self.model = model
        self.apiKey = apiKey
        self.status = status
        self.contextLength = contextLength
        self.gatewayModels = gatewayModels
    }
}

/// Which files the registrar keeps true.
public struct RegistrarConfig: Sendable, Equatable {
    /// agentron's own shared provider file.
    public var providersPath: String
    /// OpenClaw's config; nil keeps OpenClaw off (the default).
    public var openClawPath: String?
    /// The Agentron app's SQLite database; nil keeps that target off. Written only while
    /// the file exists: agentron never creates it.
    public var agentronAppPath: String?
    /// For a root daemon: a copy of agentron's entries without their keys, readable by
    /// every user (the main file is root's, 0600): `<runtime dir>/providers.json`.
    public var publicCopyPath: String?

    public init(
        providersPath: String, openClawPath: String? = nil, agentronAppPath: String? = nil,
        publicCopyPath: String? = nil
    ) {
        self.providersPath = providersPath
        self.openClawPath = openClawPath
        self.agentronAppPath = agentronAppPath
        self.publicCopyPath = publicCopyPath
    }

    /// Overrides the provider file's location (default: `<config dir>/providers.json`, docs/providers.md).
    public static let providersFileVariable = "AGENTRON_PROVIDERS_FILE"
    /// Turns the OpenClaw target on, naming its config file (e.g. `~/.openclaw/openclaw.json`).
    public static let openClawVariable = "AGENTRON_OPENCLAW_CONFIG"
    /// The Agentron app's database (`<path>`), or `off`; overrides where the app's own
    /// variables say it is.
    public static let agentronAppVariable = "AGENTRON_APP_DB"
    /// The app's own variables, read as the app reads them: the database, else its directory.
    static let appDatabaseVariable = "AGENTRON_DB_PATH"
    static let appDataDirectoryVariable = "AGENTRON_DATA_DIR"
    /// Where the app's Linux desktop build keeps its data, under `$HOME`.
    static let appDesktopDirectory = ".config/Agentron Studio"

    /// `$XDG_CONFIG_HOME/agentron/providers.json` (root: `/etc/agentron/providers.json`;
    /// under `AGENTRON_HOME`: `<dir>/config/providers.json`), or `AGENTRON_PROVIDERS_FILE`;
    /// OpenClaw only when `AGENTRON_OPENCLAW_CONFIG` names a file. A leading `~/` is the
    /// daemon's `$HOME`. The Agentron app's database: see `agentronAppDatabase`.
    public static func resolve(
        paths: AgentronPaths, environment: [String: String], isRoot: Bool = geteuid() == 0
    ) -> RegistrarConfig {
        func expand(_ path: String) -> String {
            guard path.hasPrefix("~/"), let home = environment["HOME"], !home.isEmpty else { return path }
            return home + path.dropFirst(1)
        }
        let providers = environment[providersFileVariable].flatMap { $0.isEmpty ? nil : expand($0) }
        let openClaw = environment[openClawVariable].flatMap { $0.isEmpty ? nil : expand($0) }
        return RegistrarConfig(
            providersPath: providers ?? paths.configDirectory + "/providers.json", openClawPath: openClaw,
            agentronAppPath: agentronAppDatabase(environment: environment, isRoot: isRoot, expand: expand),
            publicCopyPath: isRoot ? paths.runtimeDirectory + "/providers.json" : nil)
    }

    /// The Agentron app's database, found as the app finds it: `AGENTRON_APP_DB` (`off`
    /// turns the target off), else `AGENTRON_DB_PATH`, else `AGENTRON_DATA_DIR/agentron.sqlite`,
    /// else the desktop build's `$HOME/.config/Agentron Studio/agentron.sqlite`. The last is
    /// skipped for root (root's home is no user's app) and under `AGENTRON_HOME` (an
    /// isolated agentron, such as the tests', must not write a real user's app).
    static func agentronAppDatabase(
        environment: [String: String], isRoot: Bool, expand: (String) -> String
    ) -> String? {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let explicit = value(agentronAppVariable) { return explicit == "off" ? nil : expand(explicit) }
        if let database = value(appDatabaseVariable) { return expand(database) }
        if var directory = value(appDataDirectoryVariable) {
            while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
            return expand(directory) + "/agentron.sqlite"
        }
        guard !isRoot, value("AGENTRON_HOME") == nil, let home = value("HOME") else { return nil }
        return home + "/" + appDesktopDirectory + "/agentron.sqlite"
    }
}

// The clock the registrar stamps entries with.
extension Registrar {
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// `2025-01-31T12:00:00Z`: ISO 8601 in UTC, the form apps parse without a library.
    static func timestamp(_ seconds: time_t = time(nil)) -> String {
        var value = seconds
        var parts = tm()
        gmtime_r(&value, &parts)
        func two(_ number: Int32) -> String { number < 10 ? "0\(number)" : "\(number)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
