import AgentronCore
import AgentronHTTP
import FoundationEssentials

/// vLLM's OpenAI-compatible server (docs/engines.md):
/// `vllm serve <model> --host 127.0.0.1 --port P --served-model-name <name>` + profile args.
/// The API key, when set, goes by `VLLM_API_KEY` in the environment, which vLLM reads
/// itself, so it never appears in argv (visible to every user in `ps`).
public struct VLLMEngine: EngineDriver {
    public let kind = EngineKind.vllm
    public let program = "vllm"
    public let installHint = "install it with `pip install vllm` (GPU) or see https://docs.vllm.ai/en/latest/getting_started/installation/"

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        var arguments = [
            program, "serve", profile.model,
            "--host", profile.host,
            "--port", String(context.port),
            "--served-model-name", profile.servedModelName,
        ]
        for flag in ["--host", "--port", "--served-model-name"] where profile.args.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) {
            throw .invalidProfile("args: \(flag) is set by agentron from the profile's fields; remove it from args")
        }
        if profile.args.contains(where: { $0 == "--api-key" || $0.hasPrefix("--api-key=") }) {
            throw .invalidProfile("args: --api-key would show the key to every user in `ps`; set env VLLM_API_KEY instead")
        }
        arguments += profile.args
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile)
        return LaunchSpec(arguments: arguments, environment: environment)
    }

    public func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        // vLLM refuses connections until the weights are loaded: "connection refused" here
        // means still starting, not failed.
        switch await get(context.baseURL + "/health", timeout: timeout) {
        case .failure(let failure): return .failed("/health: \(failure.reason)")
        case .success(let response) where response.status != 200:
            return .failed("/health: status \(response.status)")
        case .success: break
        }
        // /health can pass before the model is served under our name: check /v1/models.
        switch await get(context.baseURL + "/v1/models", timeout: timeout, headers: authorization(context)) {
        case .failure(let failure): return .failed("/v1/models: \(failure.reason)")
        case .success(let response) where response.status != 200:
            return .failed("/v1/models: status \(response.status)")
        case .success(let response):
            let served = context.profile.servedModelName
            guard let list = try? JSONDecoder().decode(ModelList.self, from: Data(response.body)) else {
                return .failed("/v1/models: not a model list")
            }
            guard list.data.contains(where: { $0.id == served }) else {
                return .failed("/v1/models does not list \"\(served)\" (it lists: \(list.data.map(\.id).joined(separator: ", ")))")
            }
            return .passed("/health 200, /v1/models lists \"\(served)\"")
        }
    }

    public func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        switch await get(context.baseURL + "/health", timeout: timeout) {
        case .failure(let failure): return .failed("/health: \(failure.reason)")
        case .success(let response) where response.status == 200: return .passed("/health 200")
        case .success(let response): return .failed("/health: status \(response.status)")
        }
    }

    private func authorization(_ context: EngineContext) -> [(name: String, value: String)] {
        guard let key = context.profile.env["VLLM_API_KEY"] ?? context.daemonEnvironment["VLLM_API_KEY"], !key.isEmpty else {
            return []
        }
        return [("Authorization", "Bearer \(key)")]
    }
}

/// The part of an OpenAI `/v1/models` answer that readiness needs.
struct ModelList: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
}
