import AgentronCore
import Testing

@testable import AgentronEngines

/// What each driver starts: argv and environment for representative profiles
/// (docs/engines.md, the "launch" column).
struct DriverLaunchTests {
    static let daemon = [
        "PATH": "/usr/bin:/bin", "HOME": "/home/a", "HF_TOKEN": "hf_secret", "NOTIFY_SOCKET": "/run/systemd/notify",
    ]

    static func context(_ profile: Profile, port: Int = 8001, daemon: [String: String] = daemon) -> EngineContext {
        EngineContext(
            profile: profile, port: port, daemonEnvironment: daemon, instance: "0123456789abcdef",
            stateDirectory: "/var/lib/agentron")
    }

    // MARK: vllm

    @Test func vllmServesTheModelUnderTheServerName() throws {
        let profile = Profile(
            name: "qwen", engine: .vllm, model: "Qwen/Qwen2.5-1.5B-Instruct", args: ["--max-model-len", "8192"])
        let launch = try VLLMEngine().launch(Self.context(profile))
        #expect(
            launch.arguments == [
                "vllm", "serve", "Qwen/Qwen2.5-1.5B-Instruct", "--host", "127.0.0.1", "--port", "8001",
                "--served-model-name", "qwen",
                "--max-model-len", "8192",
            ])
        #expect(launch.environment["PATH"] == "/usr/bin:/bin")
        #expect(launch.environment["HF_TOKEN"] == "hf_secret")
        #expect(launch.environment["NOTIFY_SOCKET"] == nil, "an engine must never talk to systemd as the daemon")
    }

    @Test(arguments: ["--host", "--port=9", "--served-model-name"])
    func vllmRefusesFlagsAgentronSets(_ flag: String) {
        let profile = Profile(name: "q", engine: .vllm, model: "m", args: [flag, "x"])
        let name = flag.split(separator: "=")[0]
        #expect(
            throws: EngineError.invalidProfile(
                "args: \(name) is set by agentron from the profile's fields; remove it from args")
        ) {
            try VLLMEngine().launch(Self.context(profile))
        }
    }

    @Test func vllmKeepsTheAPIKeyOutOfArgv() throws {
        let refused = Profile(name: "q", engine: .vllm, model: "m", args: ["--api-key=sk-1"])
        #expect(
            throws: EngineError.invalidProfile(
                "args: --api-key would show the key to every user in `ps`; set env VLLM_API_KEY instead")
        ) {
            try VLLMEngine().launch(Self.context(refused))
        }
        let keyed = Profile(name: "q", engine: .vllm, model: "m", env: ["VLLM_API_KEY": "sk-1"])
        let launch = try VLLMEngine().launch(Self.context(keyed))
        #expect(launch.environment["VLLM_API_KEY"] == "sk-1")
        #expect(!launch.arguments.contains { $0.contains("sk-1") })
    }

    // MARK: ollama

    @Test func ollamaTakesItsAddressAndKeepAliveFromTheEnvironment() throws {
        let profile = Profile(name: "l", engine: .ollama, model: "llama3.2:1b", env: ["OLLAMA_CONTEXT_LENGTH": "8192"])
        let daemon = Self.daemon.merging(["OLLAMA_HOST": "0.0.0.0:11434"]) { $1 }
        let launch = try OllamaEngine().launch(Self.context(profile, daemon: daemon))
        #expect(launch.arguments == ["ollama", "serve"])
        #expect(launch.environment["OLLAMA_HOST"] == "127.0.0.1:8001", "the profile's address, never the daemon's")
        #expect(launch.environment["OLLAMA_KEEP_ALIVE"] == "-1", "loaded for good unless the profile says otherwise")
        #expect(launch.environment["OLLAMA_CONTEXT_LENGTH"] == "8192")
        #expect(launch.environment["HOME"] == "/home/a", "the daemon's HOME wins over the password database")

        var v6 = profile
        v6.host = "::1"
        #expect(try OllamaEngine().launch(Self.context(v6)).environment["OLLAMA_HOST"] == "[::1]:8001")
        var kept = profile
        kept.env["OLLAMA_KEEP_ALIVE"] = "30m"
        #expect(try OllamaEngine().launch(Self.context(kept)).environment["OLLAMA_KEEP_ALIVE"] == "30m")
    }

    @Test func ollamaRefusesItsHostInEnvAndAnyArgs() {
        let host = Profile(name: "l", engine: .ollama, model: "m", env: ["OLLAMA_HOST": "0.0.0.0:1"])
        #expect(
            throws: EngineError.invalidProfile(
                "env: OLLAMA_HOST is set by agentron from the profile's host and port; remove it from env")
        ) {
            try OllamaEngine().launch(Self.context(host))
        }
        let args = Profile(name: "l", engine: .ollama, model: "m", args: ["--verbose"])
        #expect(throws: EngineError.self) { try OllamaEngine().launch(Self.context(args)) }
    }

    // MARK: tgi

    @Test func tgiRunsTheShimWithLabelsAndNoSecretInArgv() throws {
        let profile = Profile(
            name: "t", engine: .tgi, model: "org/m", gpus: [0, 1], args: ["--max-total-tokens", "4096"],
            env: ["HF_HOME": "/data/hf", "MY_SETTING": "1", "AGENTRON_GPU_DEVICES_DIR": "/fake"], pull: .never)
        let launch = try TGIEngine().launch(Self.context(profile))
        let argv = launch.arguments
        #expect(argv[0].hasSuffix("agentron-container-shim"))
        func value(_ flag: String) -> [String] {
            argv.indices.filter { argv[$0] == flag && $0 + 1 < argv.count }.map { argv[$0 + 1] }
        }
        #expect(value("--name") == [TGIEngine.containerName("t", instance: "0123456789abcdef")])
        #expect(value("--image") == [TGIEngine.defaultImage])
        #expect(value("--port") == ["8001", "80"], "the host port for the shim, the container's for TGI")
        #expect(
            value("--label") == [
                "\(ContainerLabels.managed)=true", "\(ContainerLabels.server)=t",
                "\(ContainerLabels.instance)=0123456789abcdef",
            ])
        #expect(value("--bind") == ["/data/hf:/data"], "the host's HF cache at TGI's HF_HOME")
        #expect(
            value("--env") == ["HF_TOKEN", "MY_SETTING"],
            "by name only; host cache paths and agentron's own settings stay out")
        #expect(value("--gpus") == ["0,1"])
        #expect(value("--pull-policy") == ["never"], "the pull policy as a typed option, not an environment variable")
        #expect(argv.contains("--gpu-count-arg=--num-shard"))
        #expect(Array(argv.suffix(7)) == ["--", "--model-id", "org/m", "--port", "80", "--max-total-tokens", "4096"])
        #expect(!argv.contains { $0.contains("hf_secret") })
        #expect(launch.environment["HF_TOKEN"] == "hf_secret", "the value reaches the shim by environment")
    }

    @Test func tgiLeavesShardingToTheProfileWhenItSetsIt() throws {
        let sharded = Profile(name: "t", engine: .tgi, model: "org/m", args: ["--num-shard=2"])
        #expect(!(try TGIEngine().launch(Self.context(sharded)).arguments.contains("--gpu-count-arg=--num-shard")))
        let byEnv = Profile(name: "t", engine: .tgi, model: "org/m", env: ["NUM_SHARD": "2"])
        #expect(!(try TGIEngine().launch(Self.context(byEnv)).arguments.contains("--gpu-count-arg=--num-shard")))
        let refused = Profile(name: "t", engine: .tgi, model: "org/m", args: ["--model-id", "x"])
        #expect(throws: EngineError.invalidProfile("args: --model-id is set by agentron for TGI; remove it from args"))
        {
            try TGIEngine().launch(Self.context(refused))
        }
    }

    // MARK: command

    @Test func commandFillsInPlaceholdersAnywhereInAnArgument() throws {
        let profile = Profile(
            name: "ls", engine: .command, model: "/m/x.gguf", host: "0.0.0.0", args: ["--alias={name}"],
            command: ["llama-server", "-m", "{model}", "--host", "{host}", "--port={port}"])
        let launch = try CommandEngine().launch(Self.context(profile, port: 9000))
        #expect(
            launch.arguments == ["llama-server", "-m", "/m/x.gguf", "--host", "0.0.0.0", "--port=9000", "--alias=ls"])
        let missing = Profile(name: "ls", engine: .command, model: "m")
        #expect(throws: EngineError.self) { try CommandEngine().launch(Self.context(missing)) }
    }
}

/// The environment allow-list (docs/configuration.md, "The engine's environment"): what
/// passes from the daemon's environment, and what never does.
struct ChildEnvironmentTests {
    @Test(arguments: [
        "PATH", "HOME", "LANG", "HF_HOME", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "DOCKER_HOST", "https_proxy",
        "CUDA_HOME", "NVIDIA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "VLLM_API_KEY", "OLLAMA_MODELS", "LC_ALL",
        "NCCL_DEBUG",
    ])
    func passes(_ name: String) {
        #expect(ChildEnvironment.build(daemon: [name: "v"], profile: Self.profile)[name] == "v")
    }

    @Test(arguments: [
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
        "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "AGENTRON_HOME", "OPENAI_API_KEY", "DBUS_SESSION_BUS_ADDRESS",
    ])
    func neverPassesFromTheDaemon(_ name: String) {
        #expect(ChildEnvironment.build(daemon: [name: "v"], profile: Self.profile)[name] == nil)
    }

    @Test(arguments: ["NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS"])
    func systemdsVariablesNeverPassEvenFromTheProfile(_ name: String) {
        var profile = Self.profile
        profile.env[name] = "v"
        #expect(ChildEnvironment.build(daemon: [:], profile: profile)[name] == nil)
    }

    @Test func theProfileWinsAndGPUsAndPATHHaveDefaults() {
        var profile = Self.profile
        profile.env = ["HF_HOME": "/mine", "ANYTHING": "1"]
        profile.gpus = [2, 3]
        let environment = ChildEnvironment.build(daemon: ["HF_HOME": "/daemon"], profile: profile)
        #expect(environment["HF_HOME"] == "/mine")
        #expect(environment["ANYTHING"] == "1", "the profile's own variables pass whatever their name")
        #expect(environment["CUDA_VISIBLE_DEVICES"] == "2,3")
        #expect(environment["PATH"] == "/usr/local/bin:/usr/bin:/bin", "a PATH even when the daemon has none")
    }

    static let profile = Profile(name: "x", engine: .vllm, model: "m")
}
