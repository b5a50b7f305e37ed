import AgentronCore
import AgentronHTTP
import FoundationEssentials
import Glibc

/// Hugging Face TGI as a Docker container (docs/engines.md). The daemon runs
/// `agentron-container-shim`, which drives the container through the Docker Engine API:
/// image from the profile, `--model-id <model>` plus the profile's args, container port 80
/// published on host:P, the HF cache mounted at /data, HF_TOKEN by environment, an init
/// process, GPUs by device request, labels marking it as agentron's.
///
/// TGI upstream is in maintenance mode and recommends vLLM, SGLang or llama.cpp; it stays
/// supported here for existing deployments.
public struct TGIEngine: EngineDriver {
    /// The container's port is published by Docker (docker-proxy or NAT), never by a
    /// process of the shim's tree.
    public var listensInProcessTree: Bool { false }
    public let kind = EngineKind.tgi
    public let displayName = "TGI"
    public let program = "agentron-container-shim"
    public let installHint =
        "it ships next to agentrond; reinstall agentron (the TGI engine also needs Docker: apt-get install docker.io, and a running dockerd)"
    /// Nothing of its own on PATH: doctor checks Docker, which it needs, on its own.
    public var installedProgram: ProgramCheck? { nil }
    public let modelExample = "Qwen/Qwen2.5-1.5B-Instruct"
    public let modelDescription = "a Hugging Face model id"
    /// `image:` names the container image; `pull:` says when it is pulled.
    public let profileKeys: [EngineProfileKey: String] = [.image: "the container it runs in", .pull: "the image"]

    static let healthPath = "/health"
    /// TGI describes itself here: `{"model_id": ..., "version": ...}`.
    static let infoPath = "/info"
    /// What its leftovers are: `Leftover.kind`.
    static let leftoverKind = "container"

    /// Host-side HF cache locations; never passed into the container (see launch).
    static let hostCacheVariables: Set<String> = ["HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"]

    /// The TGI release used when a profile names no image.
    public static let defaultImage = "ghcr.io/huggingface/text-generation-inference:3.3.5"
    /// TGI's own port inside the container.
    static let containerPort = 80
    /// The shim gives Docker this much less than the daemon's grace, so `docker stop`
    /// finishes (and the container is removed) before the daemon would SIGKILL the shim.
    static let shimGraceMargin = 5.0
    /// TGI's shards talk over shared memory; Docker's 64 MB default is too small.
    static let shmSize: Int64 = 1 << 30

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        let shim = Self.shimPath() ?? program
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile)
        // Secrets and the profile's variables reach the container by name: their values
        // stay in the environment, never in argv.
        // AGENTRON_* settings are for agentron, not TGI. The HF cache variables name host
        // paths: the host cache is mounted at /data, which the image already makes HF_HOME
        // (TGI's Dockerfile: ENV HF_HOME=/data), so passing them would send the downloads
        // into the container's own layer, lost when it is removed.
        var passed = Set(
            profile.env.keys.filter { !$0.hasPrefix("AGENTRON_") && !Self.hostCacheVariables.contains($0) })
        for key in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] where environment[key] != nil { passed.insert(key) }
        let cache = environment["HF_HOME"] ?? ((environment["HOME"] ?? "/root") + "/.cache/huggingface")
        var arguments = [
            shim,
            "--name", Self.containerName(profile.name, instance: context.instance),
            "--image", profile.image ?? Self.defaultImage,
            "--host", profile.host,
            "--port", String(context.port),
            "--container-port", String(Self.containerPort),
            "--stop-timeout", String(max(1, Int(profile.stopTimeout.seconds - Self.shimGraceMargin))),
            "--label", "\(ContainerLabels.managed)=true",
            "--label", "\(ContainerLabels.server)=\(profile.name)",
            "--label", "\(ContainerLabels.instance)=\(context.instance)",
            "--bind", "\(cache):/data",
            "--shm-size", String(Self.shmSize),
        ]
        for key in passed.sorted() { arguments += ["--env", key] }
        // Docker gives a container no GPU unless asked: the profile's GPUs, else all of
        // them on a host that has NVIDIA GPUs (the shim checks). TGI counts one shard when
        // it sees NVIDIA_VISIBLE_DEVICES=all (launcher find_num_shards splits it on ','),
        // so the shim passes --num-shard with the real count unless the args set it.
        arguments += ["--gpus", profile.gpus.isEmpty ? "auto" : profile.gpus.map(String.init).joined(separator: ",")]
        if !Self.setsSharding(profile) {
            // One word: the value starts with "--", which the parser would take for a flag.
            arguments += ["--gpu-count-arg=--num-shard"]
        }
        // The profile's `pull:` (`up --pull-policy`): the shim pulls through the API, with
        // progress in the log.
        arguments += ["--pull-policy", profile.pullPolicy.rawValue]
        arguments += ["--"] + (try launcherArguments(profile))
        return LaunchSpec(arguments: arguments, environment: environment)
    }

    /// `text-generation-launcher`'s arguments, the container's command after the image's
    /// entrypoint: `--model-id <model> --port 80` + the profile's args. The same in the
    /// shim's container and on a cluster.
    func launcherArguments(_ profile: Profile) throws(EngineError) -> [String] {
        for flag in ["--port", "--hostname", "--model-id"] where ProfileArguments.contains(flag, in: profile.args) {
            throw .invalidProfile("args: \(flag) is set by agentron for TGI; remove it from args")
        }
        return ["--model-id", profile.model, "--port", String(Self.containerPort)] + profile.args
    }

    /// Whether the profile sets the shard count itself (the launcher also reads NUM_SHARD
    /// and SHARDED from its environment).
    static func setsSharding(_ profile: Profile) -> Bool {
        ProfileArguments.contains("--num-shard", in: profile.args)
            || ProfileArguments.contains("--sharded", in: profile.args)
            || profile.env["NUM_SHARD"] != nil || profile.env["SHARDED"] != nil
    }

    // MARK: On a cluster

    public var clusterGPUs: Int { 1 }

    /// The image's entrypoint (the launcher) with the shim's arguments; one shard per GPU
    /// the pod is given, as the shim does locally, unless the profile says otherwise.
    public func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer {
        var args = try launcherArguments(profile)
        if gpus > 1, !Self.setsSharding(profile) { args += ["--num-shard", String(gpus)] }
        return ClusterContainer(
            image: profile.image ?? Self.defaultImage,
            command: nil,
            args: args,
            environment: ClusterContainer.profileEnvironment(profile),
            optionalSecrets: ["HF_TOKEN"],
            port: Self.containerPort,
            // The image makes /data its HF_HOME (TGI's Dockerfile).
            cachePath: "/data",
            startup: .http(path: Self.healthPath),
            readiness: .http(path: Self.healthPath),
            liveness: .http(path: Self.healthPath),
            imagePull: profile.pull
        )
    }

    // MARK: Probes

    public func probePaths(_ profile: Profile) -> ProbePaths {
        ProbePaths(readiness: [Self.healthPath], liveness: Self.healthPath)
    }

    public func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeLiveness(context, timeout: timeout)
    }

    public func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeStatus200(context, path: Self.healthPath, timeout: timeout)
    }

    // MARK: Containers

    /// The shim removes its container when it stops; if it was killed first, the container
    /// is removed here, so nothing of the server outlives `down`.
    public func cleanup(_ context: EngineContext) async {
        guard let docker = try? DockerClient.fromEnvironment(context.daemonEnvironment) else { return }
        let name = Self.containerName(context.profile.name, instance: context.instance)
        guard let found = try? await docker.containers(label: ContainerLabels.container, value: name) else { return }
        for container in found { try? await docker.remove(container.Id) }
    }

    /// The containers labelled with any of `instances` (this daemon's id; before issue #10
    /// the label held the state directory's path, and containers left by that version are
    /// this daemon's too).
    public func leftovers(daemonEnvironment: [String: String], instances: [String]) async -> [Leftover] {
        guard let docker = try? DockerClient.fromEnvironment(daemonEnvironment) else { return [] }
        var found: [Leftover] = []
        for instance in instances {
            let containers = (try? await docker.containers(label: ContainerLabels.instance, value: instance)) ?? []
            found += containers.map {
                Leftover(server: $0.Labels?[ContainerLabels.server] ?? "", kind: Self.leftoverKind, id: $0.Id)
            }
        }
        return found
    }

    public func removeLeftover(_ leftover: Leftover, daemonEnvironment: [String: String]) async {
        guard leftover.kind == Self.leftoverKind, let docker = try? DockerClient.fromEnvironment(daemonEnvironment)
        else { return }
        try? await docker.remove(leftover.id)
    }

    /// `agentron-<server>-<8 hex of the instance>`: unique per daemon, stable across its
    /// restarts (so a new shim finds the container its predecessor left running).
    public static func containerName(_ server: String, instance: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in instance.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return "agentron-\(server)-\(String(hash, radix: 16))"
    }

    /// The shim next to the running daemon, or in the install's libexec. The daemon's path is read here, not
    /// through AgentronConfig's `AgentronPaths`: the drivers sit below the profile reader,
    /// which asks them what each engine takes.
    static func shimPath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let exe = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let bin = String(exe[..<slash])
        // Built: next to the daemon. Installed (scripts/install): <prefix>/libexec/agentron.
        let prefix = bin.lastIndex(of: "/").map { String(bin[..<$0]) } ?? ""
        let name = "agentron-container-shim"
        let candidates = [bin + "/" + name, prefix + "/libexec/agentron/" + name]
        return candidates.first { access($0, X_OK) == 0 }
    }

    // MARK: What clients and apps are told

    /// TGI serves one model and answers to the name `tgi` whatever the request says.
    public func servedModelName(_ profile: Profile) -> String { "tgi" }

    /// `--max-total-tokens N`: prompt and output together.
    public func contextLength(_ profile: Profile) -> Int? {
        ProfileArguments.flagValue(in: profile.args, names: ["--max-total-tokens"]).flatMap(
            ProfileArguments.positiveInt)
    }

    public func providerKind(for target: RegistrationTarget) -> String {
        target == .providersFile ? "tgi" : target.openAICompatibleKind
    }

    // MARK: Who answers on a port

    /// TGI describes itself on `/info`: the model it serves and its version.
    public func recognise(_ answers: ListenerAnswers, timeout: Duration) async -> ListenerIdentity? {
        guard let info = await answer(answers.baseURL + Self.infoPath, timeout: timeout), info.status == 200,
            let described = try? JSONDecoder().decode(Info.self, from: Data(info.body)), let model = described.model_id
        else { return nil }
        return ListenerIdentity(
            identified: kind.rawValue, detail: "TGI \(described.version ?? "")".trimmingSpaces + " serving \(model)")
    }

    private struct Info: Decodable {
        var model_id: String?
        var version: String?
    }
}
