import AgentronConfig
import AgentronCore
import Testing

@testable import AgentronEngines

/// What the drivers tell the rest of agentron: served names, API keys, context lengths,
/// provider entries, probe paths, the advice for a taken port.
struct DriverKnowledgeTests {
    static func profile(
        _ engine: EngineKind, args: [String] = [], env: [String: String] = [:], command: [String]? = nil
    ) -> Profile {
        Profile(name: "srv", engine: engine, model: "org/m", args: args, env: env, command: command)
    }

    @Test func everyKindHasItsDriver() {
        for kind in EngineKind.allCases {
            #expect(kind.driver.kind == kind)
            #expect(throws: Never.self) { try Engines.driver(for: kind) }
        }
        #expect(Engines.all.map(\.kind) == EngineKind.allCases)
    }

    @Test func servedModelNames() {
        #expect(
            EngineKind.vllm.driver.servedModelName(Self.profile(.vllm)) == "srv",
            "--served-model-name is the server's name")
        #expect(EngineKind.ollama.driver.servedModelName(Self.profile(.ollama)) == "org/m")
        #expect(EngineKind.tgi.driver.servedModelName(Self.profile(.tgi)) == "tgi")
        #expect(EngineKind.command.driver.servedModelName(Self.profile(.command)) == "org/m")
    }

    @Test func onlyVLLMRequiresAKey() {
        #expect(EngineKind.vllm.driver.apiKey(Self.profile(.vllm, env: ["VLLM_API_KEY": "sk-1"])) == "sk-1")
        #expect(
            EngineKind.vllm.driver.apiKey(Self.profile(.vllm, env: ["VLLM_API_KEY": ""])) == nil, "an empty key is none"
        )
        #expect(EngineKind.vllm.driver.apiKey(Self.profile(.vllm)) == nil)
        #expect(EngineKind.vllm.driver.apiKeyVariable == "VLLM_API_KEY")
        for kind in [EngineKind.ollama, .tgi, .command] {
            #expect(kind.driver.apiKey(Self.profile(kind, env: ["VLLM_API_KEY": "sk-1"])) == nil, "\(kind)")
            #expect(kind.driver.apiKeyVariable == nil)
        }
    }

    /// The context length a profile sets, as each engine reads its own flag (issue #17).
    @Test func contextLengths() {
        let vllm = EngineKind.vllm.driver
        #expect(vllm.contextLength(Self.profile(.vllm, args: ["--max-model-len", "8192"])) == 8192)
        #expect(vllm.contextLength(Self.profile(.vllm, args: ["--max-model-len=8k"])) == 8000)
        #expect(vllm.contextLength(Self.profile(.vllm, args: ["--max_model_len", "4K"])) == 4096)
        #expect(vllm.contextLength(Self.profile(.vllm, args: ["--max-model-len", "1e300k"])) == nil)
        #expect(vllm.contextLength(Self.profile(.vllm)) == nil)
        #expect(EngineKind.tgi.driver.contextLength(Self.profile(.tgi, args: ["--max-total-tokens", "4096"])) == 4096)
        #expect(
            EngineKind.ollama.driver.contextLength(Self.profile(.ollama, env: ["OLLAMA_CONTEXT_LENGTH": "16384"]))
                == 16384)
        #expect(
            EngineKind.ollama.driver.contextLength(Self.profile(.ollama, env: ["OLLAMA_CONTEXT_LENGTH": "-1"])) == nil)
        #expect(
            EngineKind.command.driver.contextLength(Self.profile(.command, command: ["llama-server", "-c", "2048"]))
                == 2048)
        #expect(
            EngineKind.command.driver.contextLength(Self.profile(.command, command: ["x", "--context-length=512"]))
                == 512)
        #expect(
            EngineKind.tgi.driver.contextLength(Self.profile(.tgi, args: ["--max-model-len", "8192"])) == nil,
            "another engine's flag")
    }

    /// The provider type each app's config knows an engine by (docs/providers.md).
    @Test func providerKindsPerTarget() {
        func kinds(_ kind: EngineKind) -> [String] {
            RegistrationTarget.allCases.map { kind.driver.providerKind(for: $0) }
        }
        #expect(RegistrationTarget.allCases == [.providersFile, .openClaw, .agentronApp])
        #expect(kinds(.vllm) == ["vllm", "openai-completions", "custom_http"])
        #expect(kinds(.ollama) == ["local", "ollama", "local"])
        #expect(kinds(.tgi) == ["tgi", "openai-completions", "custom_http"])
        #expect(kinds(.command) == ["custom_http", "openai-completions", "custom_http"])
        #expect(
            EngineKind.ollama.driver.providerAPI(for: .openClaw) == .native,
            "OpenClaw's native Ollama client: /v1 breaks tool calls")
        #expect(EngineKind.ollama.driver.providerAPI(for: .providersFile) == .openAICompatible)
        for kind in [EngineKind.vllm, .tgi, .command] {
            #expect(RegistrationTarget.allCases.allSatisfy { kind.driver.providerAPI(for: $0) == .openAICompatible })
        }
    }

    @Test func probePaths() {
        #expect(
            EngineKind.vllm.driver.probePaths(Self.profile(.vllm))
                == ProbePaths(readiness: ["/health", "/v1/models"], liveness: "/health"))
        #expect(
            EngineKind.ollama.driver.probePaths(Self.profile(.ollama))
                == ProbePaths(serving: "/", readiness: ["/api/ps"], liveness: "/"))
        #expect(
            EngineKind.tgi.driver.probePaths(Self.profile(.tgi))
                == ProbePaths(readiness: ["/health"], liveness: "/health"))
        var command = Self.profile(.command, command: ["x"])
        #expect(EngineKind.command.driver.probePaths(command).liveness == "/health")
        command.healthPath = "/ready"
        #expect(EngineKind.command.driver.probePaths(command) == ProbePaths(readiness: ["/ready"], liveness: "/ready"))
    }

    /// A fixed port held by the engine's own server: adopting it is the way out, for the
    /// engine that can adopt (the "(ollama" in `Ports.holder`'s "pid 812 (ollama)").
    @Test func advicesForATakenPort() {
        let ollama = EngineKind.ollama.driver
        #expect(
            ollama.advice(forPortHeldBy: "pid 812 (ollama)")
                == "; or, to use that Ollama instead of starting another, add --adopt")
        #expect(ollama.advice(forPortHeldBy: "pid 812 (python3)") == nil)
        #expect(ollama.advice(forPortHeldBy: nil) == nil)
        #expect(EngineKind.vllm.driver.advice(forPortHeldBy: "pid 812 (ollama)") == nil, "vLLM cannot adopt")
    }

    /// Only an engine that runs containers leaves anything outside its tree, and without a
    /// Docker daemon there is nothing to find.
    @Test func leftoversNeedDocker() async {
        let noDocker = ["DOCKER_HOST": "unix:///nonexistent/docker.sock"]
        for driver in Engines.all {
            #expect(await driver.leftovers(daemonEnvironment: noDocker, instances: ["0123"]).isEmpty, "\(driver.kind)")
        }
        #expect(
            await TGIEngine().leftovers(daemonEnvironment: ["DOCKER_HOST": "tcp://10.0.0.1:2375"], instances: ["0123"])
                .isEmpty)
    }

    @Test func whatDoctorLooksForOnPATH() {
        #expect(Engines.all.compactMap(\.installedProgram).map(\.program) == ["vllm", "ollama", "llama-server"])
        #expect(EngineKind.ollama.driver.installedProgram?.versionArguments == ["-v"])
        #expect(EngineKind.vllm.driver.installedProgram?.hint.contains("pip install vllm") == true)
    }

    @Test func modelExamplesForMessages() {
        #expect(EngineKind.vllm.driver.modelHint == "a Hugging Face model id, e.g. model: Qwen/Qwen2.5-1.5B-Instruct")
        #expect(EngineKind.tgi.driver.modelHint == "a Hugging Face model id, e.g. model: Qwen/Qwen2.5-1.5B-Instruct")
        #expect(EngineKind.ollama.driver.modelHint == "an Ollama model name, e.g. model: qwen2.5:1.5b")
        #expect(
            EngineKind.command.driver.modelHint
                == "the model the server loads and lists, e.g. model: /models/model.gguf")
    }
}

/// The engine-specific rules of a profile (issue #11): which keys each engine takes, and its
/// own rules, in the same words wherever the profile came from.
struct EngineValidationTests {
    static func problem(_ profile: Profile) -> ProfileProblem? { Engines.problem(in: profile) }

    @Test func aKeyAnotherEngineTakesNamesThatEngine() {
        var vllm = Profile(name: "x", engine: .vllm, model: "m")
        #expect(Self.problem(vllm) == nil)
        vllm.image = "ghcr.io/x:1"
        #expect(
            Self.problem(vllm)
                == ProfileProblem(
                    field: "image",
                    message:
                        "only used with engine: tgi (the container it runs in) or command (the image `export kubernetes` runs it in); remove it"
                ))
        vllm = Profile(name: "x", engine: .vllm, model: "m", command: ["x"])
        #expect(
            Self.problem(vllm)
                == ProfileProblem(
                    field: "command", message: "only used with engine: command; remove it, or set engine: command"))
        vllm = Profile(name: "x", engine: .vllm, model: "m", healthStatus: 200)
        #expect(Self.problem(vllm)?.field == "health_status")
        vllm = Profile(name: "x", engine: .vllm, model: "m", port: .fixed(11434), adopt: true)
        #expect(
            Self.problem(vllm)
                == ProfileProblem(
                    field: "adopt", message: "only used with engine: ollama; remove it, or set engine: ollama"))
        vllm = Profile(name: "x", engine: .vllm, model: "m", adopt: false)
        #expect(Self.problem(vllm) == nil, "adopt: false asks for nothing")
        let command = Profile(name: "x", engine: .command, model: "m", port: .fixed(9), command: ["x"], pull: .always)
        #expect(
            Self.problem(command)
                == ProfileProblem(
                    field: "pull", message: "only used with engine: ollama (the model) or tgi (the image); remove it"))
        #expect(Engines.refusal(of: .pull, for: .tgi) == nil)
        #expect(Engines.refusal(of: .image, for: .tgi) == nil)
    }

    /// `ollama serve` accepts no arguments (cobra.ExactArgs(0) in Ollama's cmd/cmd.go).
    @Test func ollamaTakesNoArgsAndAdoptsOnlyAFixedPort() {
        let args = Profile(name: "x", engine: .ollama, model: "llama3.2:1b", args: ["--verbose"])
        #expect(Self.problem(args)?.field == "args")
        #expect(Self.problem(args)?.message.hasPrefix("ollama serve takes no arguments") == true)
        #expect(Self.problem(args)?.message.contains("set them under env:") == true)
        #expect(Self.problem(Profile(name: "x", engine: .ollama, model: "llama3.2:1b")) == nil)
        let auto = Profile(name: "x", engine: .ollama, model: "m", adopt: true)
        #expect(
            Self.problem(auto)
                == ProfileProblem(
                    field: "adopt",
                    message:
                        "adopting needs the port the running Ollama answers on; add port: 11434 (Ollama's default) or its port"
                ))
        #expect(
            Self.problem(
                Profile(name: "x", engine: .ollama, model: "m", port: .fixed(11434), adopt: true, pull: .never)) == nil)
    }

    @Test func commandNeedsItsArgvAndAPortPlaceholderForAnAutoPort() {
        let missing = Profile(name: "x", engine: .command, model: "m")
        let argv =
            "engine command needs the server's argv; add command: [llama-server, -m, \"{model}\", --port, \"{port}\"]"
        #expect(Self.problem(missing) == ProfileProblem(field: "command", message: argv))
        #expect(
            Self.problem(Profile(name: "x", engine: .command, model: "m", command: []))
                == ProfileProblem(field: "command", message: argv))
        let noPort = Profile(name: "x", engine: .command, model: "m", command: ["server"])
        #expect(
            Self.problem(noPort)?.message.hasPrefix("port is auto but the command has no {port} placeholder") == true)
        #expect(
            Self.problem(Profile(name: "x", engine: .command, model: "m", port: .fixed(9), command: ["server"])) == nil)
        #expect(
            Self.problem(
                Profile(
                    name: "x", engine: .command, model: "m", command: ["server", "--port={port}"], healthPath: "/ok"))
                == nil)
    }

    /// The profile reader says the same, at the key (a refused one) or its value (a rule).
    @Test func theProfileReaderReportsThemWithTheirLine() throws {
        func failure(_ yaml: String) throws -> String {
            try #require(throws: ProfileError.self) { try Profile.parse(yaml: yaml, file: "p.yaml") }.description
        }
        #expect(
            try failure("engine: ollama\nmodel: m\nadopt: true\n")
                == "p.yaml:3:8: adopt: adopting needs the port the running Ollama answers on; add port: 11434 (Ollama's default) or its port"
        )
        #expect(
            try failure("engine: vllm\nmodel: m\npull: always\n")
                == "p.yaml:3:1: pull: only used with engine: ollama (the model) or tgi (the image); remove it")
        #expect(
            try failure("engine: tgi\nmodel: m\nadopt: false\n")
                == "p.yaml:3:1: adopt: only used with engine: ollama; remove it, or set engine: ollama")
        #expect(
            try failure("engine: command\nmodel: m\n").hasPrefix(
                "p.yaml:1:9: command: engine command needs the server's argv"))
        #expect(
            try Profile.parse(yaml: "engine: ollama\nmodel: m\nport: 11434\nadopt: true\npull: never\n", file: "p.yaml")
                .adopt == true)
    }

    @Test func theLimitsEveryProfileMeetsStillApply() {
        let profile = Profile(name: "-bad", engine: .ollama, model: "m", args: ["x"])
        #expect(Self.problem(profile)?.field == "name", "the generic limits come first")
        let tooLong = Profile(name: "x", engine: .tgi, model: "m", image: String(repeating: "i", count: 5000))
        #expect(Self.problem(tooLong) == ProfileProblem(field: "image", message: "is longer than 4096 bytes"))
    }
}
