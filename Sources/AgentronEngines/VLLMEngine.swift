import AgentronCore
import AgentronHTTP
import FoundationEssentials

/// vLLM's OpenAI-compatible server (docs/engines.md):
/// `vllm serve <model> --host 127.0.0.1 --port P --served-model-name <name>` + profile args.
/// The API key, when set, goes by `VLLM_API_KEY` in the environment, which vLLM reads
/// itself, so it never appears in argv (visible to every user in `ps`).
public struct VLLMEngine: EngineDriver {
    public let kind = EngineKind.vllm
    public let displayName = "vLLM"
    public let program = "vllm"
    public let profileKeys: [EngineProfileKey: String] = [.executable: ""]
    public let installHint =
        "install it with `pip install vllm` (GPU) or see https://docs.vllm.ai/en/latest/getting_started/installation/"
    public let modelExample = "Qwen/Qwen2.5-1.5B-Instruct"
    public let modelDescription = "a Hugging Face model id"
    public let apiKeyVariable: String? = "VLLM_API_KEY"

    static let healthPath = "/health"
    static let modelsPath = "/v1/models"
    /// The flags that set the context length (vLLM takes either spelling).
    static let contextLengthFlags = ["--max-model-len", "--max_model_len"]

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        let arguments =
            [profile.executable ?? program]
            + (try serveArguments(profile, host: profile.host, port: context.port))
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile)
        return LaunchSpec(arguments: arguments, environment: environment)
    }

    /// `serve <model> --host H --port P --served-model-name <name>` + the profile's args: the
    /// one argv of a local launch and of a container.
    func serveArguments(_ profile: Profile, host: String, port: Int) throws(EngineError) -> [String] {
        for flag in ["--host", "--port", "--served-model-name"] where ProfileArguments.contains(flag, in: profile.args)
        {
            throw .invalidProfile("args: \(flag) is set by agentron from the profile's fields; remove it from args")
        }
        if ProfileArguments.contains("--api-key", in: profile.args) {
            throw .invalidProfile(
                "args: --api-key would show the key to every user in `ps`; set env VLLM_API_KEY instead")
        }
        return [
            "serve", profile.model,
            "--host", host,
            "--port", String(port),
            "--served-model-name", servedModelName(profile),
        ] + profile.args
    }

    // MARK: On a cluster

    /// vLLM's OpenAI server image, the release the real-vLLM test tier runs (docs/real-vllm.md).
    public static let image = "vllm/vllm-openai:v0.32.0"
    /// vLLM's own default port.
    static let containerPort = 8000
    public var clusterGPUs: Int { 1 }

    /// The image's `vllm` with the local argv. Readiness asks /v1/models (served only once
    /// the model is); with an API key that route wants the key, which a probe cannot send
    /// without writing it into the manifest, so /health (open) stands in.
    public func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer {
        ClusterContainer(
            image: Self.image,
            command: [program] + (try serveArguments(profile, host: ClusterContainer.host, port: Self.containerPort)),
            args: [],
            environment: ClusterContainer.profileEnvironment(profile),
            optionalSecrets: ["HF_TOKEN"],
            port: Self.containerPort,
            cachePath: ClusterContainer.huggingFaceCache,
            startup: .http(path: Self.healthPath),
            readiness: .http(path: apiKey(profile) == nil ? Self.modelsPath : Self.healthPath),
            liveness: .http(path: Self.healthPath)
        )
    }

    // MARK: Probes

    public func probePaths(_ profile: Profile) -> ProbePaths {
        ProbePaths(readiness: [Self.healthPath, Self.modelsPath], liveness: Self.healthPath)
    }

    public func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        // vLLM refuses connections until the weights are loaded: "connection refused" here
        // means still starting, not failed.
        let health = await probeStatus200(context, path: Self.healthPath, timeout: timeout)
        guard health.passed else { return health }
        // /health can pass before the model is served under our name: check /v1/models.
        switch await get(context.baseURL + Self.modelsPath, timeout: timeout, headers: authorization(context)) {
        case .failure(let failure): return .failed("\(Self.modelsPath): \(failure.reason)")
        case .success(let response) where response.status != 200:
            return .failed("\(Self.modelsPath): status \(response.status)")
        case .success(let response):
            let served = servedModelName(context.profile)
            guard let list = try? JSONDecoder().decode(ModelList.self, from: Data(response.body)) else {
                return .failed("\(Self.modelsPath): not a model list")
            }
            guard list.data.contains(where: { $0.id == served }) else {
                return .failed(
                    "\(Self.modelsPath) does not list \"\(served)\" (it lists: \(list.data.map(\.id).joined(separator: ", ")))"
                )
            }
            return .passed("\(Self.healthPath) 200, \(Self.modelsPath) lists \"\(served)\"")
        }
    }

    public func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeStatus200(context, path: Self.healthPath, timeout: timeout)
    }

    /// The probe sends the key vLLM sees: the profile's, else the daemon's (VLLM_ is on
    /// the environment's allow-list).
    private func authorization(_ context: EngineContext) -> [(name: String, value: String)] {
        guard let key = context.profile.env["VLLM_API_KEY"] ?? context.daemonEnvironment["VLLM_API_KEY"], !key.isEmpty
        else {
            return []
        }
        return [("Authorization", "Bearer \(key)")]
    }

    // MARK: What clients and apps are told

    /// The server's name: `--served-model-name` sets it, and vLLM answers 404 to any other.
    public func servedModelName(_ profile: Profile) -> String { profile.name }

    public func apiKey(_ profile: Profile) -> String? {
        guard let key = profile.env["VLLM_API_KEY"], !key.isEmpty else { return nil }
        return key
    }

    /// `--max-model-len N`, also `=N`, and vLLM's human-readable `8k` (8,000) and `8K` (8,192).
    public func contextLength(_ profile: Profile) -> Int? {
        ProfileArguments.flagValue(in: profile.args, names: Self.contextLengthFlags).flatMap(Self.humanReadableInt)
    }

    /// vLLM's human-readable integers: `8192`, `8k` (×1000), `8K` (×1024), `1m`, `1M`.
    static func humanReadableInt(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces
        guard let last = trimmed.last else { return nil }
        let scales: [Character: Int] = ["k": 1000, "K": 1024, "m": 1_000_000, "M": 1 << 20]
        guard let scale = scales[last] else { return ProfileArguments.positiveInt(trimmed) }
        guard let number = Double(trimmed.dropLast()), number.isFinite, number > 0 else { return nil }
        let value = number * Double(scale)
        guard value <= Double(1 << 30) else { return nil }
        return Int(value)
    }

    public func providerKind(for target: RegistrationTarget) -> String {
        target == .providersFile ? "vllm" : target.openAICompatibleKind
    }

    // MARK: Who answers on a port

    /// vLLM's `/v1/models` cards say `"owned_by": "vllm"`; `/version` has its version.
    public func recognise(_ answers: ListenerAnswers, timeout: Duration) async -> ListenerIdentity? {
        guard answers.owners.contains("vllm") else { return nil }
        let version = await reportedVersion(answers, path: "/version", timeout: timeout)
        return ListenerIdentity(identified: kind.rawValue, detail: version.map { "vLLM \($0)" } ?? "vLLM")
    }
}

/// The part of an OpenAI `/v1/models` answer that readiness needs.
struct ModelList: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
}
