import AgentronCore
import AgentronEngines
import Testing

@testable import AgentronExport

/// How a profile's settings become the Deployment, the Service and the cache claim.
@Suite struct ManifestMappingTests {
    // MARK: Probes

    @Test(arguments: [
        (TimeSpan.minutes(30), 10, 180), (TimeSpan.seconds(95), 5, 19), (TimeSpan.seconds(97), 1, 97),
        (TimeSpan.seconds(7), 7, 1),
    ])
    func startupProbeGivesUpExactlyAtTheStartupTimeout(_ timeout: TimeSpan, _ period: Int, _ threshold: Int) throws {
        for var profile in Fixture.everyEngine {
            profile.startupTimeout = timeout
            let result = try Fixture.export(profile)
            let startup = try #require(result.probe("startupProbe"), "\(profile.engine)")
            #expect(startup["periodSeconds"]?.number == period, "\(profile.engine)")
            #expect(startup["failureThreshold"]?.number == threshold, "\(profile.engine)")
            // The startup probe's timeout never exceeds its period.
            let timeoutSeconds = try #require(startup["timeoutSeconds"]?.number)
            #expect(timeoutSeconds <= period && timeoutSeconds >= 1, "\(profile.engine)")
        }
    }

    @Test func livenessAndReadinessTakeTheProfilesProbeSettings() throws {
        for var profile in Fixture.everyEngine {
            profile.probe = ProbeSettings(interval: .seconds(15), timeout: .seconds(2.5), failureThreshold: 7)
            let result = try Fixture.export(profile)
            for kind in ["livenessProbe", "readinessProbe"] {
                let probe = try #require(result.probe(kind), "\(profile.engine) \(kind)")
                #expect(probe["periodSeconds"]?.number == 15, "\(profile.engine) \(kind)")
                #expect(probe["timeoutSeconds"]?.number == 3, "\(profile.engine) \(kind): 2.5 s rounded up")
                #expect(probe["failureThreshold"]?.number == 7, "\(profile.engine) \(kind)")
            }
        }
    }

    @Test func vllmIsReadyWhenItServesTheModelAndOpenHealthStandsInWithAnAPIKey() throws {
        let plain = try Fixture.export(Fixture.vllm())
        #expect(plain.probe("readinessProbe")?["httpGet", "path"]?.text == "/v1/models")
        #expect(plain.probe("startupProbe")?["httpGet", "path"]?.text == "/health")
        #expect(plain.probe("livenessProbe")?["httpGet", "path"]?.text == "/health")
        #expect(plain.probe("readinessProbe")?["httpGet", "port"]?.text == "http")

        let keyed = try Fixture.export(Fixture.vllm(env: ["VLLM_API_KEY": "sk-1"]))
        #expect(keyed.probe("readinessProbe")?["httpGet", "path"]?.text == "/health")
    }

    @Test func tgiAndCommandProbeTheirHealthPath() throws {
        let tgi = try Fixture.export(Fixture.tgi())
        for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
            #expect(tgi.probe(kind)?["httpGet", "path"]?.text == "/health", "\(kind)")
        }
        var profile = Fixture.command()
        profile.healthPath = "healthz"
        let command = try Fixture.export(profile)
        for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
            #expect(command.probe(kind)?["httpGet", "path"]?.text == "/healthz", "\(kind)")
        }
    }

    @Test func ollamaIsReadyWhenPsListsTheNormalizedModel() throws {
        let result = try Fixture.export(Fixture.ollama(model: "Library/Llama3.2"))
        for kind in ["startupProbe", "readinessProbe"] {
            let command = try #require(result.probe(kind)?["exec", "command"]?.strings, "\(kind)")
            #expect(command.first == "/bin/sh", "\(kind)")
            #expect(command.joined(separator: " ").contains("'llama3.2:latest'"), "\(kind): \(command)")
            #expect(command.joined(separator: " ").contains("ollama ps"), "\(kind)")
            #expect(result.probe(kind)?["httpGet"] == nil, "\(kind)")
        }
        #expect(result.probe("livenessProbe")?["httpGet", "path"]?.text == "/")
        // Pulled and loaded after start, as `prepare` does locally.
        let hook = try #require(result.container?["lifecycle", "postStart", "exec", "command"]?.strings)
        #expect(hook.prefix(2) == ["/bin/sh", "-c"])
        #expect(hook.last?.contains("ollama pull 'Library/Llama3.2'") == true)
        #expect(hook.last?.contains("ollama run 'Library/Llama3.2' ''") == true)
    }

    @Test func ollamaWithPullNeverFailsInsteadOfPulling() throws {
        var profile = Fixture.ollama()
        profile.pull = .never
        let hook = try #require(try Fixture.export(profile).container?["lifecycle", "postStart", "exec", "command"])
        let script = try #require(hook.strings?.last)
        #expect(!script.contains("ollama pull"))
        #expect(script.contains("exit 1"))
    }

    @Test func ollamaWithAFiniteKeepAliveIsReadyWhenItAnswers() throws {
        let finite = try Fixture.export(Fixture.ollama(env: ["OLLAMA_KEEP_ALIVE": "5m"]))
        #expect(finite.probe("readinessProbe")?["httpGet", "path"]?.text == "/")
        #expect(finite.probe("startupProbe")?["exec"] != nil, "started means the model was loaded once")
        let forever = try Fixture.export(Fixture.ollama(env: ["OLLAMA_KEEP_ALIVE": "-1m"]))
        #expect(forever.probe("readinessProbe")?["exec"] != nil)
        #expect(forever.env("OLLAMA_KEEP_ALIVE")?["value"]?.text == "-1m")
    }

    @Test func ollamaListensOnEveryInterfaceAndKeepsTheModelLoaded() throws {
        let result = try Fixture.export(Fixture.ollama())
        #expect(result.env("OLLAMA_HOST")?["value"]?.text == "0.0.0.0:11434")
        #expect(result.env("OLLAMA_KEEP_ALIVE")?["value"]?.text == "-1")
        #expect(result.container?["ports", 0, "containerPort"]?.number == 11434)
        #expect(result.container?["args"]?.strings == ["serve"])
        #expect(result.container?["command"] == nil, "the image's entrypoint is ollama")
        #expect(result.container?["image"]?.text == OllamaEngine.image)
    }

    // MARK: The pod

    @Test(arguments: [(TimeSpan.seconds(90), 90), (TimeSpan.seconds(2.5), 3), (TimeSpan.seconds(0.2), 1)])
    func graceCoversTheStopTimeout(_ stop: TimeSpan, _ seconds: Int) throws {
        for var profile in Fixture.everyEngine {
            profile.stopTimeout = stop
            let grace = try #require(try Fixture.export(profile).pod?["terminationGracePeriodSeconds"]?.number)
            #expect(grace == seconds, "\(profile.engine)")
            #expect(Double(grace) >= stop.seconds, "\(profile.engine)")
        }
    }

    @Test func sharedMemoryIsAMemoryVolumeOfTheGivenSize() throws {
        let result = try Fixture.export(Fixture.tgi(), KubernetesOptions(shmSize: "2Gi"))
        let volume = try #require(result.pod?["volumes"]?.items.first { $0["name"]?.text == "dshm" })
        #expect(volume["emptyDir", "medium"]?.text == "Memory")
        #expect(volume["emptyDir", "sizeLimit"]?.text == "2Gi")
        let mount = try #require(result.container?["volumeMounts"]?.items.first { $0["name"]?.text == "dshm" })
        #expect(mount["mountPath"]?.text == "/dev/shm")
        let standard = try Fixture.export(Fixture.vllm())
        #expect(standard.pod?["volumes", 0, "emptyDir", "sizeLimit"]?.text == KubernetesOptions.defaultShmSize)
    }

    // MARK: The cache claim

    @Test(arguments: [
        (EngineKind.vllm, "/root/.cache/huggingface"), (.tgi, "/data"), (.ollama, "/root/.ollama"),
        (.command, "/root/.cache/huggingface"),
    ])
    func theCacheClaimIsMountedWhereTheEngineDownloads(_ engine: EngineKind, _ path: String) throws {
        let profile = try #require(Fixture.everyEngine.first { $0.engine == engine })
        let result = try Fixture.export(profile, KubernetesOptions(cacheSize: "100Gi"))
        #expect(result.documents.map { $0["kind"]?.text } == ["PersistentVolumeClaim", "Deployment", "Service"])
        let claim = try #require(result.claim)
        let name = KubernetesNames.objectName(profile.name)
        #expect(claim["metadata", "name"]?.text == name + "-cache")
        #expect(claim["spec", "resources", "requests", "storage"]?.text == "100Gi")
        #expect(claim["spec", "accessModes"]?.strings == ["ReadWriteOnce"])
        #expect(claim["spec", "storageClassName"] == nil, "no class given: the cluster's default")
        let volume = try #require(result.pod?["volumes"]?.items.first { $0["name"]?.text == "model-cache" })
        #expect(volume["persistentVolumeClaim", "claimName"]?.text == name + "-cache")
        let mount = try #require(result.container?["volumeMounts"]?.items.first { $0["name"]?.text == "model-cache" })
        #expect(mount["mountPath"]?.text == path)
    }

    @Test func severalReplicasShareTheCacheAndAStorageClassIsNamedWhenGiven() throws {
        let options = KubernetesOptions(replicas: 3, storageClass: "fast-ssd.example.com")
        let claim = try #require(try Fixture.export(Fixture.vllm(), options).claim)
        #expect(claim["spec", "accessModes"]?.strings == ["ReadWriteMany"])
        #expect(claim["spec", "storageClassName"]?.text == "fast-ssd.example.com")
    }

    @Test func noCacheMeansNoClaimAndNoCacheMount() throws {
        for profile in Fixture.everyEngine {
            let result = try Fixture.export(profile, KubernetesOptions(cache: .none))
            #expect(result.documents.map { $0["kind"]?.text } == ["Deployment", "Service"], "\(profile.engine)")
            #expect(result.pod?["volumes"]?.items.map { $0["name"]?.text } == ["dshm"], "\(profile.engine)")
            #expect(result.container?["volumeMounts"]?.items.map { $0["name"]?.text } == ["dshm"])
            #expect(!result.text.contains("model-cache"), "\(profile.engine)")
        }
    }

    // MARK: The Deployment

    @Test func oneReplicaIsRecreatedAndSeveralRollWithoutSurge() throws {
        let one = try #require(try Fixture.export(Fixture.vllm()).deployment)
        #expect(one["spec", "replicas"]?.number == 1)
        #expect(one["spec", "strategy"] == .map([("type", .string("Recreate"))]))
        let three = try #require(try Fixture.export(Fixture.vllm(), KubernetesOptions(replicas: 3)).deployment)
        #expect(three["spec", "replicas"]?.number == 3)
        #expect(three["spec", "strategy", "type"]?.text == "RollingUpdate")
        #expect(three["spec", "strategy", "rollingUpdate", "maxSurge"]?.number == 0)
        #expect(three["spec", "strategy", "rollingUpdate", "maxUnavailable"]?.number == 1)
    }

    @Test func theDeploymentAndTheServiceSelectThePodsTheTemplateLabels() throws {
        for profile in Fixture.everyEngine {
            let result = try Fixture.export(profile)
            let deployment = try #require(result.deployment)
            let name = KubernetesNames.objectName(profile.name)
            #expect(deployment["metadata", "name"]?.text == name)
            #expect(result.service?["metadata", "name"]?.text == name)
            let podLabels = try #require(deployment["spec", "template", "metadata", "labels"])
            for selector in [deployment["spec", "selector", "matchLabels"], result.service?["spec", "selector"]] {
                let selector = try #require(selector)
                #expect(!selector.keys.isEmpty)
                for key in selector.keys { #expect(selector[key] == podLabels[key], "\(profile.engine) \(key)") }
            }
            #expect(podLabels["app.kubernetes.io/managed-by"]?.text == "agentron")
            #expect(podLabels["agentron/engine"]?.text == profile.engine.rawValue)
            #expect(podLabels["agentron/model"]?.text == KubernetesNames.labelValue(profile.model))
            #expect(deployment["metadata", "annotations", "agentron/model"]?.text == profile.model)
            #expect(deployment["metadata", "annotations", "agentron/profile"]?.text == profile.name)
        }
    }

    @Test func aNamespaceIsWrittenIntoEveryObjectOnlyWhenGiven() throws {
        let placed = try Fixture.export(Fixture.vllm(), KubernetesOptions(namespace: "inference"))
        #expect(placed.documents.count == 3)
        for document in placed.documents { #expect(document["metadata", "namespace"]?.text == "inference") }
        let unplaced = try Fixture.export(Fixture.vllm())
        for document in unplaced.documents { #expect(document["metadata", "namespace"] == nil) }
    }

    // MARK: The Service

    @Test func theServiceKeepsTheProfilesFixedPortElseTheContainers() throws {
        var fixed = Fixture.vllm()
        fixed.port = .fixed(8001)
        let pinned = try Fixture.export(fixed)
        #expect(pinned.service?["spec", "ports", 0, "port"]?.number == 8001)
        #expect(pinned.container?["ports", 0, "containerPort"]?.number == 8000)
        #expect(pinned.service?["spec", "ports", 0, "targetPort"]?.text == "http")
        #expect(pinned.container?["ports", 0, "name"]?.text == "http")

        let expected: [EngineKind: Int] = [.vllm: 8000, .tgi: 80, .ollama: 11434, .command: 8080]
        for profile in Fixture.everyEngine {
            let result = try Fixture.export(profile)
            let port = result.container?["ports", 0, "containerPort"]?.number
            #expect(port == expected[profile.engine], "\(profile.engine)")
            #expect(result.service?["spec", "ports", 0, "port"]?.number == port, "\(profile.engine)")
        }
    }

    @Test(arguments: KubernetesOptions.ServiceType.allCases)
    func theServiceTypeIsTheOptions(_ type: KubernetesOptions.ServiceType) throws {
        let service = try Fixture.export(Fixture.vllm(), KubernetesOptions(serviceType: type)).service
        #expect(service?["spec", "type"]?.text == type.rawValue)
    }

    @Test func tgiPullsTheImageByTheProfilesPolicy() throws {
        var profile = Fixture.tgi()
        #expect(try Fixture.export(profile).container?["imagePullPolicy"] == nil)
        #expect(try Fixture.export(profile).container?["image"]?.text == TGIEngine.defaultImage)
        profile.pull = .always
        profile.image = "ghcr.io/huggingface/text-generation-inference:3.0.0"
        let result = try Fixture.export(profile)
        #expect(result.container?["imagePullPolicy"]?.text == "Always")
        #expect(result.container?["image"]?.text == "ghcr.io/huggingface/text-generation-inference:3.0.0")
        profile.pull = .missing
        #expect(try Fixture.export(profile).container?["imagePullPolicy"]?.text == "IfNotPresent")
    }

    @Test func theImageOptionReplacesTheEnginesImage() throws {
        for profile in Fixture.everyEngine {
            let result = try Fixture.export(profile, KubernetesOptions(image: "registry.local/server:2"))
            #expect(result.container?["image"]?.text == "registry.local/server:2", "\(profile.engine)")
        }
    }
}
