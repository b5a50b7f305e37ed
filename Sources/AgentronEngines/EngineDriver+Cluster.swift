import AgentronCore

// How an engine runs in a container of its own on a cluster (`agentron export kubernetes`,
// docs/kubernetes.md). The exporter (AgentronExport) turns this into manifests and knows
// nothing about any engine; each driver builds its container from the same code that builds
// its local launch, so the two never drift apart.

/// One engine's container: what runs, what it is told, where it keeps its downloads and
/// how a cluster tells it is up.
public struct ClusterContainer: Sendable, Equatable {
    /// The image; nil when the engine has none of its own and the profile names none.
    public var image: String?
    /// The container's command, replacing the image's entrypoint; nil keeps the image's.
    public var command: [String]?
    public var args: [String]
    /// The variables the container is given: the profile's (what the engine passes locally)
    /// and the ones the engine sets itself. Secrets among them are the exporter's to turn
    /// into references; their values never reach a manifest.
    public var environment: [String: String]
    /// Secrets the engine reads when they are there (`HF_TOKEN` for gated models), whether
    /// or not the profile sets them.
    public var optionalSecrets: [String]
    /// The port the engine listens on inside the container.
    public var port: Int
    /// Where the engine keeps what it downloads: the model cache volume's mount path.
    public var cachePath: String?
    public var startup: ClusterProbe
    public var readiness: ClusterProbe
    public var liveness: ClusterProbe
    /// Run once the container has started (Ollama: pull and load the model, which the
    /// daemon does locally).
    public var postStart: [String]?
    /// When the image is pulled: the profile's `pull:` where it is about the image.
    public var imagePull: PullPolicy?

    public init(
        image: String?, command: [String]?, args: [String], environment: [String: String],
        optionalSecrets: [String] = [], port: Int, cachePath: String?, startup: ClusterProbe,
        readiness: ClusterProbe, liveness: ClusterProbe, postStart: [String]? = nil, imagePull: PullPolicy? = nil
    ) {
        self.image = image
        self.command = command
        self.args = args
        self.environment = environment
        self.optionalSecrets = optionalSecrets
        self.port = port
        self.cachePath = cachePath
        self.startup = startup
        self.readiness = readiness
        self.liveness = liveness
        self.postStart = postStart
        self.imagePull = imagePull
    }
}

/// How a cluster asks a container whether it is up: an HTTP GET on the container's port
/// (any status from 200 to 399 passes), or a command run inside it (exit 0 passes).
public enum ClusterProbe: Sendable, Equatable {
    case http(path: String)
    case exec([String])
}

extension ClusterContainer {
    /// Containers listen on every interface of their pod.
    public static let host = "0.0.0.0"
    /// Where Hugging Face's libraries keep downloads for root when HF_HOME is unset: the
    /// vLLM and SGLang images run as root and set no HF_HOME.
    static let huggingFaceCache = "/root/.cache/huggingface"
    /// Variables that name this machine's model cache: the cache volume replaces them.
    static let hostCacheVariables: Set<String> = [
        "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "OLLAMA_MODELS",
    ]

    /// The profile's variables as the container gets them: not agentron's own settings, not
    /// this machine's cache directories (the cache volume stands for them), not this
    /// machine's GPU indices (the cluster's device plugin assigns GPUs).
    static func profileEnvironment(_ profile: Profile) -> [String: String] {
        profile.env.filter { key, _ in whyNotPassed(key) == nil }
    }

    /// Why the profile's variable `key` is not given to a container, or nil when it is.
    public static func whyNotPassed(_ key: String) -> String? {
        if key.hasPrefix("AGENTRON_") { return "it is agentron's own setting" }
        if key == "CUDA_VISIBLE_DEVICES" {
            return "it names this machine's GPUs; the cluster's device plugin gives the pod its own"
        }
        if hostCacheVariables.contains(key) {
            return "it names this machine's model cache; the cache volume stands for it"
        }
        return nil
    }
}
