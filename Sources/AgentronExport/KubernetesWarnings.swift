import AgentronCore
import AgentronEngines

/// What a profile says that a cluster cannot do as it is done locally: one line each, with
/// what was dropped and what to use instead (docs/kubernetes.md, "What does not carry
/// over"). Nothing is lost silently.
enum KubernetesWarnings {
    static func of(_ profile: Profile, container: ClusterContainer, gpus: Int, options: KubernetesOptions) -> [String] {
        var lines: [String] = []
        func warn(_ line: String) { lines.append("\(profile.name): \(line)") }

        if let ttl = profile.ttl {
            warn(
                "ttl: \(ttl) dropped: a Deployment keeps its pods running; to stop an idle model use a scale-to-zero autoscaler (KEDA's HTTP add-on, Knative Serving)"
            )
        }
        if let group = profile.group {
            warn(
                "group: \(group.inWarning) dropped: pods do not stop one another; give each Deployment its own GPUs, or scale the others to zero (kubectl scale deployment <name> --replicas=0) first"
            )
        }
        if profile.adopt == true {
            warn(
                "adopt: true dropped: the pod runs its own \(profile.engine.driver.displayName), not the one on this machine"
            )
        }
        if let executable = profile.executable {
            warn("executable: \(executable.inWarning) dropped: it is this machine's program; the image's runs")
        }
        if profile.restart.mode == .never {
            warn(
                "restart: policy never dropped: a Deployment always restarts its container; run it as a Job if it should run once"
            )
        }
        if let status = profile.healthStatus, !(200...399).contains(status) {
            warn(
                "health_status: \(status) cannot be expected by a Kubernetes probe, which passes on 200-399 only; the probes take those instead"
            )
        }
        if isHostPath(profile.model) {
            warn(
                "model: \(profile.model.inWarning) is a path on this machine, which the pod cannot see: mount a volume holding it at that path, or use a model id the engine downloads"
            )
        }
        for argument in hostPathArguments(profile) {
            warn(
                "\(argument.field): \(argument.value.inWarning) is a path on this machine: mount it into the pod at that path (a ConfigMap or a volume), or the server will not find it"
            )
        }
        for key in profile.env.keys.sorted() {
            if let reason = ClusterContainer.whyNotPassed(key) {
                warn("env: \(key) is not passed: \(reason)")
            } else if !Profile.isSecretKey(key), let value = profile.env[key], isHostPath(value) {
                warn(
                    "env: \(key)=\(value.inWarning) is a path on this machine: mount it into the pod at that path"
                )
            }
        }
        if options.gpus == nil, !profile.gpus.isEmpty {
            let indices = profile.gpus.map(String.init).joined(separator: ", ")
            warn(
                "gpus: [\(indices)] are this machine's GPU indices; the pod asks for \(gpus) GPU\(gpus == 1 ? "" : "s") and the cluster picks which"
            )
        }
        if gpus == 0 {
            warn("the pod asks for no GPU (the profile lists none), so it runs on CPU; pass --gpus N to give it GPUs")
        }
        return lines
    }

    /// `/abs`, `~/x`, `./x`, `../x`: a path on this machine.
    static func isHostPath(_ text: String) -> Bool {
        text.hasPrefix("/") || text.hasPrefix("~") || text.hasPrefix("./") || text.hasPrefix("../")
    }

    /// The profile's arguments that name paths on this machine, as `--flag /path` or
    /// `--flag=/path`. A `command` profile's program counts unless `image_program` names
    /// the one in the image; `{model}` is the model's warning, not repeated here.
    static func hostPathArguments(_ profile: Profile) -> [(field: String, value: String)] {
        var found: [(field: String, value: String)] = []
        var command = profile.command ?? []
        if profile.imageProgram != nil, !command.isEmpty { command.removeFirst() }
        for (field, values) in [("command", command), ("args", profile.args)] {
            for value in values where !value.contains("{model}") {
                let path = value.firstIndex(of: "=").map { String(value[value.index(after: $0)...]) } ?? value
                if isHostPath(path) || isHostPath(value) { found.append((field, value)) }
            }
        }
        return found
    }
}

extension String {
    /// A profile's value in a warning: as it is, or quoted with its escapes when it holds a
    /// line break or a control character, so a warning stays one line.
    var inWarning: String {
        let clipped = clippedForMessage
        return clipped.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } ? shownInMessage : clipped
    }
}
