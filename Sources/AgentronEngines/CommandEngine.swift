import AgentronCore
import AgentronProcess

/// Any OpenAI-compatible server agentron can start from an argv (docs/engines.md): llama.cpp's
/// `llama-server`, SGLang, a script. The profile's `command` carries `{host}`, `{port}`,
/// `{model}` and `{name}` placeholders, filled in at launch; the profile's `args` follow.
/// Ready (and live) when the health path answers the expected status: llama-server's
/// `/health` answers 503 `{"error":{"code":503,"message":"Loading model",...}}` while it
/// loads and 200 `{"status":"ok"}` after, so anything but the expected status is "not yet".
public struct CommandEngine: EngineDriver {
    public let kind = EngineKind.command
    public let displayName = "command"
    /// Any program: it may publish its port through docker-proxy or rootless podman,
    /// outside its process tree, so only another user's listener counts as a stranger.
    public var listenerCheck: Ports.ListenerCheck { .user }
    /// The real program is the profile's `command[0]`; this names the field for messages.
    public let program = "command[0]"
    public let installHint =
        "the first word of the profile's `command` must be a program on the daemon's PATH or an absolute path; check it with `agentron profiles show <name>`"
    /// The server the built-in `llama-server` profile runs; any other is the user's choice.
    public var installedProgram: ProgramCheck? {
        ProgramCheck(
            program: "llama-server", versionArguments: ["--version"],
            hint:
                "optional, for the llama-server profile: build llama.cpp (https://github.com/ggml-org/llama.cpp) or install a release binary"
        )
    }
    public let modelExample = "/models/model.gguf"
    public let modelDescription = "the model the server loads and lists"
    /// The argv, the probe that tells it is healthy, and the image `export kubernetes` runs
    /// it in (with where its program is in that image).
    public let profileKeys: [EngineProfileKey: String] = [
        .command: "", .healthPath: "", .healthStatus: "", .image: "the image `export kubernetes` runs it in",
        .imageProgram: "",
    ]
    /// The flags that set the context length: llama-server's `-c`/`--ctx-size`, SGLang's
    /// `--context-length`.
    static let contextLengthFlags = ["-c", "--ctx-size", "--context-length"]

    static let defaultHealthPath = "/health"
    static let defaultHealthStatus = 200
    static let placeholders = ["{host}", "{port}", "{model}", "{name}"]

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        let arguments = try argv(profile, host: profile.host, port: context.port)
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile)
        return LaunchSpec(arguments: arguments, environment: environment)
    }

    /// `command` + `args` with the placeholders filled in: the one argv of a local launch and
    /// of a container.
    func argv(_ profile: Profile, host: String, port: Int) throws(EngineError) -> [String] {
        guard let command = profile.command, let first = command.first, !first.trimmingSpaces.isEmpty else {
            throw .invalidProfile(
                "server \"\(profile.name)\": engine command needs the server's argv in `command`, e.g. command: [llama-server, -m, \"{model}\", --host, \"{host}\", --port, \"{port}\"]"
            )
        }
        let values = [
            "{host}": host,
            "{port}": String(port),
            "{model}": profile.model,
            "{name}": profile.name,
        ]
        return (command + profile.args).map { Self.substitute($0, values) }
    }

    // MARK: On a cluster

    /// The port a container listens on when the profile fixes none (llama-server's default).
    static let containerPort = 8080

    /// The profile's argv in the profile's `image` (the program as `image_program` names it
    /// there, when it differs from the local one), probed on its health path.
    public func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer {
        let port: Int
        if case .fixed(let fixed) = profile.port { port = fixed } else { port = Self.containerPort }
        var command = try argv(profile, host: ClusterContainer.host, port: port)
        if let program = profile.imageProgram { command[0] = program }
        let health = ClusterProbe.http(path: Self.healthPath(profile))
        return ClusterContainer(
            image: profile.image,
            command: command,
            args: [],
            environment: ClusterContainer.profileEnvironment(profile),
            optionalSecrets: ["HF_TOKEN"],
            port: port,
            cachePath: ClusterContainer.huggingFaceCache,
            startup: health,
            readiness: health,
            liveness: health
        )
    }

    /// Replaces every placeholder in one argument; text around it stays (`--port={port}`).
    static func substitute(_ argument: String, _ values: [String: String]) -> String {
        var result = argument
        for placeholder in placeholders where result.contains(placeholder) {
            result = result.replacing(placeholder, with: values[placeholder] ?? placeholder)
        }
        return result
    }

    // MARK: What a profile may say

    public func validate(_ profile: Profile) throws(ProfileProblem) {
        guard let command = profile.command, !command.isEmpty else {
            throw ProfileProblem(
                field: "command",
                message:
                    "engine command needs the server's argv; add command: [llama-server, -m, \"{model}\", --port, \"{port}\"]"
            )
        }
        if case .auto = profile.port, !command.contains(where: { $0.contains("{port}") }) {
            throw ProfileProblem(
                field: "command",
                message:
                    "port is auto but the command has no {port} placeholder; pass \"{port}\" to the server's port flag, or set a fixed port:"
            )
        }
    }

    /// The context flag as the profile's `command` sets it.
    public func contextLength(_ profile: Profile) -> Int? {
        ProfileArguments.flagValue(in: profile.command ?? [], names: Self.contextLengthFlags).flatMap(
            ProfileArguments.positiveInt)
    }

    // MARK: Probes

    public func probePaths(_ profile: Profile) -> ProbePaths {
        let path = Self.healthPath(profile)
        return ProbePaths(readiness: [path], liveness: path)
    }

    public func probeReadiness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeHealth(context, timeout: timeout)
    }

    public func probeLiveness(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        await probeHealth(context, timeout: timeout)
    }

    private func probeHealth(_ context: EngineContext, timeout: Duration) async -> ProbeOutcome {
        let path = Self.healthPath(context.profile)
        let expected = context.profile.healthStatus ?? Self.defaultHealthStatus
        switch await get(context.baseURL + path, timeout: timeout) {
        case .failure(let failure):
            return .failed("\(path): \(failure.reason)")
        case .success(let response) where response.status == expected:
            return .passed("\(path) \(expected)")
        case .success(let response):
            // llama-server says why in its body ("Loading model"): keep a short excerpt.
            let body = response.bodyText.trimmingSpaces
            let excerpt = body.isEmpty ? "" : ": \(body.count > 120 ? String(body.prefix(120)) + "…" : body)"
            return .failed("\(path): status \(response.status), expected \(expected)\(excerpt)")
        }
    }

    static func healthPath(_ profile: Profile) -> String {
        guard let path = profile.healthPath?.trimmingSpaces, !path.isEmpty else { return defaultHealthPath }
        return path.hasPrefix("/") ? path : "/" + path
    }
}
