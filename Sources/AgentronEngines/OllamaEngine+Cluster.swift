import AgentronCore

// Ollama on a cluster (docs/kubernetes.md): the image's `ollama serve`, and what the daemon
// does locally before a server is ready (pull the model by the profile's policy, load it)
// done by a post-start hook, with the same readiness: the model is loaded.

extension OllamaEngine {
    /// The release the FakeEngine's Ollama mirrors (docs/engines.md).
    public static let image = "ollama/ollama:0.12.6"
    /// Where the image's `ollama serve` keeps its models (it runs as root).
    static let containerCache = "/root/.ollama"

    public func container(_ profile: Profile, gpus: Int) throws(EngineError) -> ClusterContainer {
        let environment = try serveEnvironment(
            ClusterContainer.profileEnvironment(profile), profile: profile, host: ClusterContainer.host,
            port: Self.standardPort)
        let loaded = ClusterProbe.exec(Self.loadedCheck(profile.model))
        // With a finite keep-alive Ollama unloads an idle model and loads it again on the
        // next request: then answering at all is ready, as liveness is locally.
        let keepsLoaded = Self.keepsForever(keepAlive(environment))
        return ClusterContainer(
            image: Self.image,
            command: nil,
            args: Self.serveArguments,
            environment: environment,
            port: Self.standardPort,
            cachePath: Self.containerCache,
            startup: loaded,
            readiness: keepsLoaded ? loaded : .http(path: Self.rootPath),
            liveness: .http(path: Self.rootPath),
            postStart: ["/bin/sh", "-c", Self.prepareScript(profile.model, policy: profile.pullPolicy)]
        )
    }

    /// Whether a keep-alive keeps the model loaded for good: a negative number, with or
    /// without a unit (`-1`, `-1m`).
    static func keepsForever(_ keepAlive: String) -> Bool {
        keepAlive.trimmingSpaces.hasPrefix("-")
    }

    /// What `prepare` does locally, in the container's own CLI: wait for the server, pull
    /// the model by the policy (`missing`: only when `ollama show` does not know it;
    /// `never`: fail when it is not there), then load it (`ollama run M ""`, Ollama's way
    /// to preload a model).
    static func prepareScript(_ model: String, policy: PullPolicy) -> String {
        let name = shellQuoted(model)
        let pull: String
        switch policy {
        case .missing: pull = "ollama show \(name) >/dev/null 2>&1 || ollama pull \(name)"
        case .always: pull = "ollama pull \(name)"
        case .never:
            pull =
                "ollama show \(name) >/dev/null 2>&1 || { echo \(shellQuoted("model \(model) is not pulled and pull is never")) >&2; exit 1; }"
        }
        return "until ollama list >/dev/null 2>&1; do sleep 1; done; \(pull) && ollama run \(name) ''"
    }

    /// Exits 0 when `ollama ps` lists the model under its normalized name (what /api/ps,
    /// the local readiness probe, reports).
    static func loadedCheck(_ model: String) -> [String] {
        let wanted = normalizedName(model)
        return [
            "/bin/sh", "-c",
            "ollama ps | awk -v m=\(shellQuoted(wanted)) 'NR > 1 && tolower($1) == m { found = 1 } END { exit !found }'",
        ]
    }

    /// One word for sh: in single quotes, each `'` written as `'\''`.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacing("'", with: "'\\''") + "'"
    }
}
