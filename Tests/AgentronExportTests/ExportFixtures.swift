import AgentronCore
import AgentronEngines

@testable import AgentronExport

/// Profiles, exports and paths into the manifests that the export tests share.
enum Fixture {
    static let vllmModel = "Qwen/Qwen2.5-1.5B-Instruct"

    static func vllm(
        name: String = "qwen", args: [String] = ["--max-model-len", "8192"], env: [String: String] = [:],
        gpus: [Int] = []
    ) -> Profile {
        Profile(name: name, engine: .vllm, model: vllmModel, gpus: gpus, args: args, env: env)
    }

    static func tgi(name: String = "llama-tgi", args: [String] = [], gpus: [Int] = []) -> Profile {
        Profile(
            name: name, engine: .tgi, model: "meta-llama/Llama-3.2-1B-Instruct", gpus: gpus,
            args: ["--max-total-tokens", "8192"] + args)
    }

    static func ollama(name: String = "llama-small", model: String = "llama3.2:1b", env: [String: String] = [:])
        -> Profile
    {
        Profile(name: name, engine: .ollama, model: model, env: env)
    }

    static let llamaCommand = ["llama-server", "-m", "{model}", "--host", "{host}", "--port", "{port}"]

    static func command(
        name: String = "llama-server", model: String = "unsloth/Llama-3.2-1B-Instruct-GGUF",
        command: [String] = llamaCommand, image: String? = "ghcr.io/ggml-org/llama.cpp:server",
        imageProgram: String? = nil, port: PortSpec = .auto
    ) -> Profile {
        Profile(
            name: name, engine: .command, model: model, port: port, args: ["--ctx-size", "8192"], command: command,
            healthPath: "/health", image: image, imageProgram: imageProgram)
    }

    /// One profile per engine, for properties every export must have.
    static var everyEngine: [Profile] { [vllm(), tgi(), ollama(), command()] }

    static func export(_ profile: Profile, _ options: KubernetesOptions = KubernetesOptions()) throws
        -> KubernetesExport.Result
    {
        try KubernetesExport.export(profile, options: options)
    }
}

extension KubernetesExport.Result {
    func document(_ kind: String) -> Manifest? { documents.first { $0["kind"]?.text == kind } }
    var claim: Manifest? { document("PersistentVolumeClaim") }
    var deployment: Manifest? { document("Deployment") }
    var service: Manifest? { document("Service") }
    var pod: Manifest? { deployment?["spec", "template", "spec"] }
    /// The one container of the pod.
    var container: Manifest? { pod?["containers", 0] }

    /// The container's variable `name`, as its env entry.
    func env(_ name: String) -> Manifest? {
        container?["env"]?.items.first { $0["name"]?.text == name }
    }

    /// The container's `startupProbe`, `readinessProbe` or `livenessProbe`.
    func probe(_ kind: String) -> Manifest? { container?[kind] }

    /// The container's `nvidia.com/gpu` limit; nil when it asks for none.
    var gpuLimit: Int? { container?["resources", "limits", "nvidia.com/gpu"]?.number }

    var text: String { Manifest.stream(documents) }
}

extension Manifest {
    /// A list of strings as Swift strings (nil when any item is not a string).
    var strings: [String]? {
        guard case .list(let items) = self else { return nil }
        let texts = items.compactMap(\.text)
        return texts.count == items.count ? texts : nil
    }

    /// A map's keys in order.
    var keys: [String] {
        if case .map(let pairs) = self { return pairs.map(\.0) }
        return []
    }
}
