import AgentronCore
import AgentronEngines

/// What `agentron export kubernetes` is asked for beyond the profiles (docs/kubernetes.md).
public struct KubernetesOptions: Sendable, Equatable {
    public enum Cache: String, Sendable, CaseIterable {
        /// A PersistentVolumeClaim per profile, mounted at the engine's cache path: weights
        /// are downloaded once, not on every restart.
        case pvc
        /// No cache volume: every new pod downloads the model again.
        case none
    }

    public enum ServiceType: String, Sendable, CaseIterable {
        case clusterIP = "ClusterIP"
        case nodePort = "NodePort"
        case loadBalancer = "LoadBalancer"
    }

    /// nil: the manifests name no namespace (kubectl's current one applies).
    public var namespace: String?
    public var replicas: Int
    public var cache: Cache
    public var cacheSize: String
    public var storageClass: String?
    public var shmSize: String
    /// Replaces the engine's image (and a `command` profile's `image:`).
    public var image: String?
    public var serviceType: ServiceType
    /// GPUs per pod; nil: the profile's count, else the engine's default.
    public var gpus: Int?

    public static let defaultCacheSize = "50Gi"
    /// TGI's shards and PyTorch's workers talk over shared memory; a container's default
    /// /dev/shm is 64 MB. 1 GiB is what the TGI shim gives a local container.
    public static let defaultShmSize = "1Gi"

    public init(
        namespace: String? = nil, replicas: Int = 1, cache: Cache = .pvc, cacheSize: String = defaultCacheSize,
        storageClass: String? = nil, shmSize: String = defaultShmSize, image: String? = nil,
        serviceType: ServiceType = .clusterIP, gpus: Int? = nil
    ) {
        self.namespace = namespace
        self.replicas = replicas
        self.cache = cache
        self.cacheSize = cacheSize
        self.storageClass = storageClass
        self.shmSize = shmSize
        self.image = image
        self.serviceType = serviceType
        self.gpus = gpus
    }

    /// The exporter checks its options itself (the CLI is one caller among others).
    public func validate() throws(ExportError) {
        if let namespace, !KubernetesNames.isLabel(namespace) {
            throw .option(
                "--namespace", "\(namespace.shownInMessage) is not a Kubernetes namespace name",
                fix: "use lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit")
        }
        guard (1...1000).contains(replicas) else {
            throw .option("--replicas", "\(replicas) is out of range", fix: "use a number from 1 to 1000")
        }
        for (flag, size) in [("--cache-size", cacheSize), ("--shm-size", shmSize)] where !Self.isQuantity(size) {
            throw .option(
                flag, "\(size.shownInMessage) is not a size Kubernetes reads", fix: "write it like 50Gi or 512Mi"
            )
        }
        if let storageClass, !KubernetesNames.isSubdomain(storageClass) {
            throw .option(
                "--storage-class", "\(storageClass.shownInMessage) is not a storage class name",
                fix: "use the name `kubectl get storageclass` lists")
        }
        if let image, image.isEmpty || image.contains(where: { $0 == " " || $0.isNewline }) {
            throw .option(
                "--image", "\(image.shownInMessage) is not an image reference",
                fix: "write it like ghcr.io/org/server:1.0")
        }
        if let gpus, !(0...64).contains(gpus) {
            throw .option("--gpus", "\(gpus) is out of range", fix: "use a number from 0 to 64")
        }
    }

    /// A Kubernetes quantity as sizes are written: digits, an optional fraction, an optional
    /// binary or decimal suffix (`50Gi`, `1.5G`, `512Mi`, `1000000`).
    static func isQuantity(_ text: String) -> Bool {
        let suffixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", ""]
        guard let suffix = suffixes.first(where: { text.hasSuffix($0) }) else { return false }
        let number = text.dropLast(suffix.count)
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), number.count <= 20 else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}

/// Why an export cannot be made: one line, with what to do.
public enum ExportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A flag's value is refused.
    case option(String, String, fix: String)
    /// The engine cannot build the profile's container (the same refusal as a local launch).
    case engine(profile: String, EngineError)
    /// A `command` profile with no image to run in.
    case noImage(profile: String)
    /// Two profiles make the same Kubernetes name.
    case nameClash(String, String, name: String)

    public var description: String {
        switch self {
        case .option(let flag, let problem, let fix): "\(flag): \(problem); \(fix)"
        case .engine(let profile, let error): "\(profile): \(error)"
        case .noImage(let profile):
            "\(profile): engine command has no image to run on a cluster; add image: <the image its command runs in> to the profile, or pass --image"
        case .nameClash(let first, let second, let name):
            "\(first) and \(second) both become \"\(name)\" in Kubernetes; export them separately or rename one"
        }
    }
}

extension String {
    /// Untrusted text in a one-line message: clipped, and in double quotes with its line
    /// breaks and control characters escaped.
    public var shownInMessage: String { YAMLRender.doubleQuoted(clippedForMessage) }
}
