import AgentronCore
import AgentronEngines

/// `agentron export kubernetes`: a profile as the manifests a cluster runs it with
/// (docs/kubernetes.md). Everything engine-specific comes from the profile's driver
/// (`EngineDriver.container`); this turns it into a Deployment, a Service and a cache
/// claim, and says what did not carry over.
public enum KubernetesExport {
    /// One profile's manifests and what the user must know about them.
    public struct Result: Sendable, Equatable {
        /// In `kubectl apply` order: the cache claim, the Deployment, the Service.
        public var documents: [Manifest]
        /// One line each: a setting that has no equivalent on a cluster, what was dropped
        /// and what to use instead.
        public var warnings: [String]
        /// The Secret the pod reads its secrets from, and the variables it holds; nil when
        /// it reads none.
        public var secret: SecretReference?
    }

    public struct SecretReference: Sendable, Equatable {
        public var name: String
        /// Variable → whether the pod starts without it.
        public var keys: [(name: String, optional: Bool)]

        public static func == (lhs: SecretReference, rhs: SecretReference) -> Bool {
            lhs.name == rhs.name && lhs.keys.map(\.name) == rhs.keys.map(\.name)
                && lhs.keys.map(\.optional) == rhs.keys.map(\.optional)
        }

        /// The command that makes it, reading each value from the shell's own variable so
        /// that no secret is written here: `kubectl create secret generic qwen-secrets
        /// --from-literal=HF_TOKEN="$HF_TOKEN"`.
        public func createCommand(namespace: String?) -> String {
            var words = ["kubectl", "create", "secret", "generic", name]
            if let namespace { words += ["--namespace", namespace] }
            words += keys.map { "--from-literal=\($0.name)=\"$\($0.name)\"" }
            return words.joined(separator: " ")
        }
    }

    static let managedBy = "agentron"
    static let containerName = "server"
    static let portName = "http"
    static let shmVolume = "dshm"
    static let cacheVolume = "model-cache"

    /// Every profile's manifests, in order; refuses two profiles that make the same name.
    public static func export(_ profiles: [Profile], options: KubernetesOptions) throws(ExportError) -> [Result] {
        try options.validate()
        var taken: [String: String] = [:]
        for profile in profiles {
            let name = KubernetesNames.objectName(profile.name)
            if let other = taken[name], other != profile.name {
                throw .nameClash(other, profile.name, name: name)
            }
            taken[name] = profile.name
        }
        var results: [Result] = []
        for profile in profiles { results.append(try export(profile, options: options)) }
        return results
    }

    public static func export(_ profile: Profile, options: KubernetesOptions) throws(ExportError) -> Result {
        try options.validate()
        let driver = profile.engine.driver
        let gpus = options.gpus ?? (profile.gpus.isEmpty ? driver.clusterGPUs : profile.gpus.count)
        var container: ClusterContainer
        do {
            container = try driver.container(profile, gpus: gpus)
        } catch {
            throw .engine(profile: profile.name, error)
        }
        if let image = options.image { container.image = image }
        guard let image = container.image else { throw .noImage(profile: profile.name) }

        let name = KubernetesNames.objectName(profile.name)
        let labels = labels(profile, name: name)
        let (environment, secret) = environment(container, name: name)
        var documents: [Manifest] = []
        if options.cache == .pvc, container.cachePath != nil {
            documents.append(cacheClaim(name: name, labels: labels, options: options))
        }
        let pod = podSpec(
            profile, container: container, image: image, environment: environment, gpus: gpus, name: name,
            options: options)
        documents.append(deployment(profile, name: name, labels: labels, pod: pod, options: options))
        documents.append(service(profile, container: container, name: name, labels: labels, options: options))
        return Result(
            documents: documents,
            warnings: KubernetesWarnings.of(profile, container: container, gpus: gpus, options: options),
            secret: secret)
    }

    // MARK: Objects

    static func metadata(_ name: String, labels: [(String, Manifest)], options: KubernetesOptions) -> Manifest {
        var pairs: [(String, Manifest)] = [("name", .string(name))]
        if let namespace = options.namespace { pairs.append(("namespace", .string(namespace))) }
        pairs.append(("labels", .map(labels)))
        return .map(pairs)
    }

    /// The standard labels, and agentron's: engine and model (the model's full id in an
    /// annotation, as a label value cannot hold `/`).
    static func labels(_ profile: Profile, name: String) -> [(String, Manifest)] {
        selector(name) + [
            ("app.kubernetes.io/component", .string("inference-server")),
            ("app.kubernetes.io/managed-by", .string(managedBy)),
            ("agentron/engine", .string(profile.engine.rawValue)),
            ("agentron/model", .string(KubernetesNames.labelValue(profile.model))),
        ]
    }

    /// What the Service and the Deployment select pods by.
    static func selector(_ name: String) -> [(String, Manifest)] {
        [("app.kubernetes.io/name", .string(name)), ("app.kubernetes.io/instance", .string(name))]
    }

    static func cacheClaim(name: String, labels: [(String, Manifest)], options: KubernetesOptions) -> Manifest {
        // One pod mounts a ReadWriteOnce claim; replicas on several nodes need ReadWriteMany.
        var spec: [(String, Manifest)] = [
            ("accessModes", .list([.string(options.replicas == 1 ? "ReadWriteOnce" : "ReadWriteMany")])),
            ("resources", .map([("requests", .map([("storage", .string(options.cacheSize))]))])),
        ]
        if let storageClass = options.storageClass { spec.append(("storageClassName", .string(storageClass))) }
        return .map([
            ("apiVersion", .string("v1")),
            ("kind", .string("PersistentVolumeClaim")),
            ("metadata", metadata(name + "-cache", labels: labels, options: options)),
            ("spec", .map(spec)),
        ])
    }

    static func deployment(
        _ profile: Profile, name: String, labels: [(String, Manifest)], pod: Manifest, options: KubernetesOptions
    ) -> Manifest {
        // A GPU pod cannot surge: the new one would wait for GPUs (and a ReadWriteOnce claim)
        // the old one holds. One replica is replaced; several are replaced one at a time.
        let strategy: Manifest =
            options.replicas == 1
            ? .map([("type", .string("Recreate"))])
            : .map([
                ("type", .string("RollingUpdate")),
                ("rollingUpdate", .map([("maxSurge", .int(0)), ("maxUnavailable", .int(1))])),
            ])
        guard case .map(var meta) = metadata(name, labels: labels, options: options) else { return pod }
        meta.append(
            (
                "annotations",
                .map([("agentron/model", .string(profile.model)), ("agentron/profile", .string(profile.name))])
            ))
        return .map([
            ("apiVersion", .string("apps/v1")),
            ("kind", .string("Deployment")),
            ("metadata", .map(meta)),
            (
                "spec",
                .map([
                    ("replicas", .int(options.replicas)),
                    ("selector", .map([("matchLabels", .map(selector(name)))])),
                    ("strategy", strategy),
                    ("template", .map([("metadata", .map([("labels", .map(labels))])), ("spec", pod)])),
                ])
            ),
        ])
    }

    /// The Service listens on the profile's fixed port, so apps keep the port they used
    /// locally; else on the container's.
    static func service(
        _ profile: Profile, container: ClusterContainer, name: String, labels: [(String, Manifest)],
        options: KubernetesOptions
    ) -> Manifest {
        var port = container.port
        if case .fixed(let fixed) = profile.port { port = fixed }
        return .map([
            ("apiVersion", .string("v1")),
            ("kind", .string("Service")),
            ("metadata", metadata(name, labels: labels, options: options)),
            (
                "spec",
                .map([
                    ("type", .string(options.serviceType.rawValue)),
                    ("selector", .map(selector(name))),
                    (
                        "ports",
                        .list([
                            .map([
                                ("name", .string(portName)), ("port", .int(port)), ("targetPort", .string(portName)),
                                ("protocol", .string("TCP")),
                            ])
                        ])
                    ),
                ])
            ),
        ])
    }

    // MARK: The environment

    /// Plain values as they are; secrets (by name: `HF_TOKEN`, `VLLM_API_KEY`) from the
    /// profile's Secret, required when the profile sets them, optional when the engine
    /// only reads them if present.
    static func environment(_ container: ClusterContainer, name: String) -> ([Manifest], SecretReference?) {
        let secretName = name + "-secrets"
        var entries: [Manifest] = []
        var keys: [(name: String, optional: Bool)] = []
        for key in container.environment.keys.sorted() {
            if Profile.isSecretKey(key) {
                keys.append((key, false))
            } else {
                entries.append(.map([("name", .string(key)), ("value", .string(container.environment[key] ?? ""))]))
            }
        }
        for key in container.optionalSecrets where container.environment[key] == nil { keys.append((key, true)) }
        for key in keys {
            let reference: [(String, Manifest)] = [
                ("name", .string(secretName)), ("key", .string(key.name)), ("optional", .bool(key.optional)),
            ]
            entries.append(
                .map([("name", .string(key.name)), ("valueFrom", .map([("secretKeyRef", .map(reference))]))]))
        }
        return (entries, keys.isEmpty ? nil : SecretReference(name: secretName, keys: keys))
    }
}
