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
    /// Any program: it may publish its port through docker-proxy or rootless podman,
    /// outside its process tree, so only another user's listener counts as a stranger.
    public var listenerCheck: Ports.ListenerCheck { .user }
    /// The real program is the profile's `command[0]`; this names the field for messages.
    public let program = "command[0]"
    public let installHint = "the first word of the profile's `command` must be a program on the daemon's PATH or an absolute path; check it with `agentron profiles show <name>`"

    static let defaultHealthPath = "/health"
    static let defaultHealthStatus = 200
    static let placeholders = ["{host}", "{port}", "{model}", "{name}"]

    public init() {}

    public func launch(_ context: EngineContext) throws(EngineError) -> LaunchSpec {
        let profile = context.profile
        guard let command = profile.command, let first = command.first, !first.trimmingSpaces.isEmpty else {
            throw .invalidProfile(
                "server \"\(profile.name)\": engine command needs the server's argv in `command`, e.g. command: [llama-server, -m, \"{model}\", --host, \"{host}\", --port, \"{port}\"]")
        }
        let values = [
            "{host}": profile.host,
            "{port}": String(context.port),
            "{model}": profile.model,
            "{name}": profile.name,
        ]
        let arguments = (command + profile.args).map { Self.substitute($0, values) }
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: profile)
        return LaunchSpec(arguments: arguments, environment: environment)
    }

    /// Replaces every placeholder in one argument; text around it stays (`--port={port}`).
    static func substitute(_ argument: String, _ values: [String: String]) -> String {
        var result = argument
        for placeholder in placeholders where result.contains(placeholder) {
            result = result.replacing(placeholder, with: values[placeholder] ?? placeholder)
        }
        return result
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
