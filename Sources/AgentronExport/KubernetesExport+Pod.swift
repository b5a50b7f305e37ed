import AgentronCore
import AgentronEngines

// The pod: the engine's container with the profile's probes, GPUs, shared memory and model
// cache, and a grace that covers the profile's stop timeout (docs/kubernetes.md).

extension KubernetesExport {
    static func podSpec(
        _ profile: Profile, container: ClusterContainer, image: String, environment: [Manifest], gpus: Int,
        name: String, options: KubernetesOptions
    ) -> Manifest {
        var main: [(String, Manifest)] = [("name", .string(containerName)), ("image", .string(image))]
        if let pull = container.imagePull { main.append(("imagePullPolicy", .string(pullPolicy(pull)))) }
        if let command = container.command { main.append(("command", .list(command.map(Manifest.string)))) }
        if !container.args.isEmpty { main.append(("args", .list(container.args.map(Manifest.string)))) }
        main.append(
            (
                "ports",
                .list([
                    .map([
                        ("name", .string(portName)), ("containerPort", .int(container.port)),
                        ("protocol", .string("TCP")),
                    ])
                ])
            ))
        if !environment.isEmpty { main.append(("env", .list(environment))) }
        if gpus > 0 {
            main.append(("resources", .map([("limits", .map([("nvidia.com/gpu", .int(gpus))]))])))
        }
        var mounts: [Manifest] = [.map([("name", .string(shmVolume)), ("mountPath", .string("/dev/shm"))])]
        var volumes: [Manifest] = [
            .map([
                ("name", .string(shmVolume)),
                ("emptyDir", .map([("medium", .string("Memory")), ("sizeLimit", .string(options.shmSize))])),
            ])
        ]
        if options.cache == .pvc, let cachePath = container.cachePath {
            mounts.append(.map([("name", .string(cacheVolume)), ("mountPath", .string(cachePath))]))
            volumes.append(
                .map([
                    ("name", .string(cacheVolume)),
                    ("persistentVolumeClaim", .map([("claimName", .string(name + "-cache"))])),
                ]))
        }
        main.append(("volumeMounts", .list(mounts)))
        main += probes(profile, container: container)
        if let postStart = container.postStart {
            main.append(
                (
                    "lifecycle",
                    .map([("postStart", .map([("exec", .map([("command", .list(postStart.map(Manifest.string)))]))]))])
                ))
        }
        return .map([
            ("terminationGracePeriodSeconds", .int(KubernetesProbeTiming.seconds(profile.stopTimeout))),
            ("containers", .list([.map(main)])),
            ("volumes", .list(volumes)),
        ])
    }

    /// The profile's `pull:` as an image pull policy.
    static func pullPolicy(_ pull: PullPolicy) -> String {
        switch pull {
        case .missing: "IfNotPresent"
        case .always: "Always"
        case .never: "Never"
        }
    }

    /// Startup: the readiness check until `startup_timeout` (period × threshold equal to it),
    /// so a pod that is still downloading weights is not killed. Readiness: the engine's
    /// own (the model is served). Liveness: `probe.interval`, `probe.timeout`,
    /// `probe.failure_threshold`, as locally once ready.
    static func probes(_ profile: Profile, container: ClusterContainer) -> [(String, Manifest)] {
        let timeout = KubernetesProbeTiming.seconds(profile.probe.timeout)
        let interval = KubernetesProbeTiming.seconds(profile.probe.interval)
        let threshold = min(max(profile.probe.failureThreshold, 1), Int(Int32.max))
        let startup = KubernetesProbeTiming.startup(profile.startupTimeout)
        return [
            (
                "startupProbe",
                probe(
                    container.startup, period: startup.periodSeconds, timeout: min(timeout, startup.periodSeconds),
                    failureThreshold: startup.failureThreshold)
            ),
            (
                "readinessProbe",
                probe(container.readiness, period: interval, timeout: timeout, failureThreshold: threshold)
            ),
            (
                "livenessProbe",
                probe(container.liveness, period: interval, timeout: timeout, failureThreshold: threshold)
            ),
        ]
    }

    static func probe(_ check: ClusterProbe, period: Int, timeout: Int, failureThreshold: Int) -> Manifest {
        let action: (String, Manifest)
        switch check {
        case .http(let path):
            action = ("httpGet", .map([("path", .string(path)), ("port", .string(portName))]))
        case .exec(let command):
            action = ("exec", .map([("command", .list(command.map(Manifest.string)))]))
        }
        return .map([
            action,
            ("periodSeconds", .int(period)),
            ("timeoutSeconds", .int(timeout)),
            ("failureThreshold", .int(failureThreshold)),
        ])
    }
}
