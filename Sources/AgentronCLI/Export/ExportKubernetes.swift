import AgentronClient
import AgentronConfig
import AgentronCore
import AgentronExport
import ArgumentParser
import Glibc

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write what another system needs to run the same servers.",
        subcommands: [ExportKubernetes.self]
    )
}

struct ExportKubernetes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubernetes",
        abstract: "Write Kubernetes manifests (Deployment, Service, model cache) for profiles or servers.",
        discussion: """
            Each TARGET (a profile name or file, or a running server's name) becomes a
            Deployment and a Service, and a PersistentVolumeClaim for the model cache, as
            multi-document YAML:

              agentron export kubernetes qwen2.5-1.5b-instruct | kubectl apply -f -
              agentron export kubernetes llama-3.2-1b-instruct -o llama.yaml --namespace ml

            The container runs the engine's pinned image with the argv `agentron up` runs
            locally. Startup, readiness and liveness probes come from the profile's
            startup_timeout and probe settings; GPUs from its gpus (else the engine's
            default). Secrets (HF_TOKEN, API keys) are read from a Secret, never written into
            the manifests: the command that makes it is printed on stderr, as is one line
            for each setting that has no Kubernetes equivalent. See docs/kubernetes.md.
            """,
        aliases: ["k8s"]
    )

    @Argument(help: "Profile names or files, or running servers' names.", completion: Completion.profiles)
    var targets: [String]

    @Option(name: .shortAndLong, help: "Write the manifests to this file instead of stdout.")
    var output: String?

    @Option(help: "The namespace to put every object in (default: none named; kubectl's current).")
    var namespace: String?

    @Option(help: "Pods per Deployment.")
    var replicas = 1

    @Option(help: "The model cache: pvc (a PersistentVolumeClaim per profile) or none.")
    var cache = KubernetesOptions.Cache.pvc.rawValue

    @Option(help: "The cache claim's size.")
    var cacheSize = KubernetesOptions.defaultCacheSize

    @Option(help: "The cache claim's storage class (default: the cluster's default class).")
    var storageClass: String?

    @Option(help: "The size of the memory-backed /dev/shm.")
    var shmSize = KubernetesOptions.defaultShmSize

    @Option(help: "The container image, instead of the engine's pinned one or the profile's image.")
    var image: String?

    @Option(help: "The Service's type: ClusterIP, NodePort or LoadBalancer.")
    var serviceType = KubernetesOptions.ServiceType.clusterIP.rawValue

    @Option(help: "GPUs per pod (nvidia.com/gpu), instead of the profile's count or the engine's default.")
    var gpus: Int?

    func run() async throws {
        guard let cacheMode = KubernetesOptions.Cache(rawValue: cache) else {
            throw fail(
                "--cache: \(cache.shownInMessage) is not a cache mode; use pvc or none", code: ExitStatus.usage)
        }
        guard let service = KubernetesOptions.ServiceType(rawValue: serviceType) else {
            throw fail(
                "--service-type: \(serviceType.shownInMessage) is not a Service type; use ClusterIP, NodePort or LoadBalancer",
                code: ExitStatus.usage)
        }
        let options = KubernetesOptions(
            namespace: namespace, replicas: replicas, cache: cacheMode, cacheSize: cacheSize,
            storageClass: storageClass, shmSize: shmSize, image: image, serviceType: service, gpus: gpus)
        let context = CLIContext()
        var profiles: [Profile] = []
        for target in targets { profiles.append(try await Self.profile(target, context: context)) }

        let results: [KubernetesExport.Result]
        do {
            results = try KubernetesExport.export(profiles, options: options)
        } catch {
            if case .option = error { throw fail("\(error)", code: ExitStatus.usage) }
            throw fail("\(error)", code: ExitStatus.failure)
        }
        let header =
            "# agentron export kubernetes \(profiles.map(\.name).joined(separator: " ")) (agentron \(agentronVersion))\n"
        let text = Manifest.stream(results.flatMap(\.documents), header: header)
        if let output {
            do {
                try FileIO.writeAtomically(Array(text.utf8), to: output, mode: 0o644, owner: nil)
            } catch {
                throw fail("cannot write \(output): \(error)")
            }
        } else {
            Output.writeStdout(Array(text.utf8))
        }
        for result in results {
            for warning in result.warnings { Output.note("warning: \(warning)") }
        }
        for (profile, result) in zip(profiles, results) {
            guard let secret = result.secret else { continue }
            let keys = secret.keys.map { $0.optional ? "\($0.name) (optional)" : $0.name }.joined(separator: ", ")
            Output.note(
                "\(profile.name): the pod reads \(keys) from Secret \(secret.name); make it with:\n  \(secret.createCommand(namespace: namespace))"
            )
        }
        if let output { Output.note("wrote \(results.flatMap(\.documents).count) objects to \(output)") }
    }

    /// A profile by name or file; else the profile of a server the daemon runs under that
    /// name (one started from flags has no file). Without a daemon, the profile's error.
    static func profile(_ target: String, context: CLIContext) async throws -> Profile {
        do {
            return try context.catalog.resolve(target)
        } catch {
            guard error.file.isEmpty, let info = try? await context.client.inspect(target), let profile = info.profile
            else {
                throw fail(error.description, code: error.file.isEmpty ? ExitStatus.notFound : ExitStatus.failure)
            }
            return profile
        }
    }
}
