import AgentronCore
import AgentronHTTP
import FoundationEssentials

/// Ollama (docs/engines.md): `ollama serve` with `OLLAMA_HOST=<host>:<port>`, then the model is
/// looked up (`POST /api/show`), pulled by the profile's pull policy (`POST /api/pull`,
/// streamed NDJSON progress) and loaded with the profile's keep-alive (`POST /api/generate`
/// with no prompt; `POST /api/embed` with no input for an embedding model). Ready once
/// `GET /api/ps` lists it.
///
/// Ollama listens at once, long before a model is usable, so "answers" and "ready" are
/// separate steps here (`needsPreparation`). Model names pass through unchanged:
/// `llama3.2:1b`, `qwen2.5:7b-instruct-q4_K_M`, `hf.co/<org>/<repo>-GGUF[:quant]`.
public struct OllamaEngine: EngineDriver {
    public let kind = EngineKind.ollama
    public let displayName = "Ollama"
    public let program = "ollama"
    public let installHint =
        "install it with `curl -fsSL https://ollama.com/install.sh | sh` or see https://ollama.com/download/linux"
    public var installedProgram: ProgramCheck? {
        ProgramCheck(program: program, versionArguments: ["-v"], hint: installHint)
    }
    public let needsPreparation = true
    public var defaultPort: Int? { Self.standardPort }
    public let processNames = ["ollama"]
    public let modelExample = "qwen2.5:1.5b"
    public let modelDescription = "an Ollama model name"
    /// `adopt: true` uses an Ollama already answering on the profile's port; `pull:` says
    /// when the model is pulled.
    public let profileKeys: [EngineProfileKey: String] = [.adopt: "", .pull: "the model", .executable: ""]

    /// Where `ollama serve` listens when OLLAMA_HOST names no port.
    static let standardPort = 11434
    static let rootPath = "/"
    static let runningModelsPath = "/api/ps"

    /// The keep-alive used when neither the profile nor the daemon's environment sets
    /// OLLAMA_KEEP_ALIVE: forever. A server agentron reports as ready must answer without
    /// a reload, and Ollama's own default unloads an idle model after 5 minutes.
    static let defaultKeepAlive = "-1"
    /// Connecting to an engine on loopback is instant or refused; this only bounds a
    /// wedged accept queue.
    static let connectTimeout: Duration = .seconds(5)

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        var environment = try serveEnvironment(
            ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile), profile: profile,
            host: profile.host, port: context.port)
        Self.applyHomeDefaults(&environment, stateDirectory: context.stateDirectory, host: .current())
        return LaunchSpec(arguments: [profile.executable ?? program] + Self.serveArguments, environment: environment)
    }

    /// `ollama serve` takes its settings from the environment and refuses any argument
    /// (cobra.ExactArgs(0)).
    static let serveArguments = ["serve"]

    /// `base` with what agentron sets for `ollama serve`, locally and in a container: the
    /// address (OLLAMA_HOST) and the keep-alive.
    func serveEnvironment(_ base: [String: String], profile: Profile, host: String, port: Int) throws(EngineError)
        -> [String: String]
    {
        var environment = base
        if profile.env["OLLAMA_HOST"] != nil {
            throw .invalidProfile(
                "env: OLLAMA_HOST is set by agentron from the profile's host and port; remove it from env")
        }
        // The daemon's own OLLAMA_HOST (inherited through the OLLAMA_ allow-list) would point
        // the engine at the system Ollama's port: the profile's address always wins.
        environment["OLLAMA_HOST"] = Self.hostValue(host: host, port: port)
        environment["OLLAMA_KEEP_ALIVE"] = keepAlive(environment)
        // Validation refuses args; this catches a profile restored from an older state file.
        guard profile.args.isEmpty else {
            throw .invalidProfile(
                "args: ollama serve takes no arguments (it reads its settings from OLLAMA_* variables); remove args and set them under env:"
            )
        }
        return environment
    }

    // MARK: What a profile may say

    public func validate(_ profile: Profile) throws(ProfileProblem) {
        if profile.adopt == true, case .auto = profile.port {
            throw ProfileProblem(
                field: "adopt",
                message:
                    "adopting needs the port the running \(displayName) answers on; add port: \(Self.standardPort) (\(displayName)'s default) or its port"
            )
        }
        // `ollama serve` is a cobra command with ExactArgs(0) (cmd/cmd.go): any argument
        // makes it exit 1 at once, so refuse it here with a line that says what to do.
        if !profile.args.isEmpty {
            throw ProfileProblem(
                field: "args",
                message:
                    "ollama serve takes no arguments (it reads its settings from OLLAMA_* variables); remove args and set them under env:, like env: {OLLAMA_CONTEXT_LENGTH: \"8192\"}"
            )
        }
    }

    /// `127.0.0.1:8001`, `[::1]:8001`: the form OLLAMA_HOST takes.
    static func hostValue(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The profile's OLLAMA_KEEP_ALIVE, else the daemon's, else forever.
    func keepAlive(_ environment: [String: String]) -> String {
        guard let value = environment["OLLAMA_KEEP_ALIVE"]?.trimmingSpaces, !value.isEmpty else {
            return Self.defaultKeepAlive
        }
        return value
    }

    // MARK: Probes

    public func probePaths(_ profile: Profile) -> ProbePaths {
        ProbePaths(serving: Self.rootPath, readiness: [Self.runningModelsPath], liveness: Self.rootPath)
    }

    public func probeServing(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        switch await get(context.baseURL + Self.rootPath, timeout: timeout) {
        case .failure(let failure): return .failed("/: \(failure.reason)")
        case .success(let response) where response.status == 200:
            return .passed("/ 200 (\(response.bodyText.trimmingSpaces))")
        case .success(let response): return .failed("/: status \(response.status)")
        }
    }

    public func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        let model = context.profile.model
        switch await get(context.baseURL + Self.runningModelsPath, timeout: timeout) {
        case .failure(let failure): return .failed("/api/ps: \(failure.reason)")
        case .success(let response) where response.status != 200:
            return .failed("/api/ps: status \(response.status)")
        case .success(let response):
            guard let list = try? JSONDecoder().decode(RunningModels.self, from: Data(response.body)) else {
                return .failed("/api/ps: not a list of running models")
            }
            let wanted = Self.normalizedName(model)
            let loaded = list.models.contains { entry in
                [entry.name, entry.model].contains { $0.map(Self.normalizedName) == wanted }
            }
            guard loaded else {
                let names = list.models.compactMap { $0.name ?? $0.model }
                return .failed(
                    "/api/ps does not list \"\(model)\" (loaded: \(names.isEmpty ? "none" : names.joined(separator: ", ")))"
                )
            }
            return .passed("/api/ps lists \"\(model)\"")
        }
    }

    /// `GET /` only: with a finite keep-alive Ollama unloads an idle model and loads it again
    /// on the next request, which is not a failure of the server.
    public func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeStatus200(context, path: Self.rootPath, timeout: timeout)
    }

    /// Ollama's short name for a model, the form /api/ps reports: the default registry and
    /// `library/` namespace dropped, `:latest` added when no tag is given, lower-cased
    /// (Ollama compares names case-insensitively).
    static func normalizedName(_ name: String) -> String {
        var name = name.trimmingSpaces.lowercased()
        for prefix in ["http://", "https://"] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        for prefix in ["registry.ollama.ai/", "library/"] where name.hasPrefix(prefix) {
            name.removeFirst(prefix.count)
        }
        let lastComponent = name.split(separator: "/").last ?? Substring(name)
        if !lastComponent.contains(":") { name += ":latest" }
        return name
    }

    // MARK: What clients and apps are told

    /// `OLLAMA_CONTEXT_LENGTH` in the profile's `env`.
    public func contextLength(_ profile: Profile) -> Int? {
        profile.env["OLLAMA_CONTEXT_LENGTH"].flatMap(ProfileArguments.positiveInt)
    }

    /// Apps know Ollama by its own adapters: `local` in providers.json and the Agentron
    /// app, and OpenClaw's client for the native `/api/chat`, whose docs say the `/v1`
    /// route breaks tool calling (the model's tool JSON arrives as plain text; in OpenClaw
    /// since February 2026, openclaw/openclaw#11853).
    public func providerKind(for target: RegistrationTarget) -> String {
        switch target {
        case .providersFile, .agentronApp: "local"
        case .openClaw: "ollama"
        }
    }

    public func providerAPI(for target: RegistrationTarget) -> ProviderAPI {
        target == .openClaw ? .native : .openAICompatible
    }

    // MARK: Who answers on a port

    /// Ollama says so on `/` ("Ollama is running"); `/api/version` has its version.
    public func recognise(_ answers: ListenerAnswers, timeout: Duration) async -> ListenerIdentity? {
        guard answers.root.bodyText.contains("Ollama is running") else { return nil }
        let version = await reportedVersion(answers, path: "/api/version", timeout: timeout)
        return ListenerIdentity(
            identified: kind.rawValue, detail: version.map { "Ollama \($0)" } ?? "Ollama",
            models: answers.models?.map(\.id))
    }
}
