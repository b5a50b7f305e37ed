import AgentronCore
import AgentronEngines
import Testing

@testable import AgentronExport

/// What does not carry over to a cluster is said, one line per setting, never silently
/// dropped (`KubernetesExport.Result.warnings`).
@Suite struct WarningTests {
    /// The warnings about `setting`: lines that start with the profile's name and name it.
    static func lines(_ result: KubernetesExport.Result, profile: Profile, about setting: String) -> [String] {
        result.warnings.filter { $0.hasPrefix("\(profile.name): ") && $0.contains(setting) }
    }

    @Test func aPlainVLLMProfileCarriesOverWithoutAWarning() throws {
        let result = try Fixture.export(Fixture.vllm())
        #expect(result.warnings.isEmpty, "\(result.warnings)")
    }

    @Test func everyWarningIsOneLineNamingTheProfile() throws {
        var profile = Fixture.command(model: "/models/x.gguf")
        profile.ttl = .minutes(10)
        profile.group = "gpu0"
        profile.restart.mode = .never
        profile.healthStatus = 503
        profile.env = ["HF_HOME": "/home/u/hf", "TEMPLATE": "/home/u/t.jinja"]
        profile.args = ["--chat-template", "/home/u/t.jinja"]
        profile.gpus = [0]
        let result = try Fixture.export(profile)
        #expect(result.warnings.count == 9, "\(result.warnings)")
        for line in result.warnings {
            #expect(line.hasPrefix("llama-server: "), "\(line)")
            #expect(!line.contains("\n"), "\(line)")
        }
    }

    @Test(arguments: ["ttl", "group", "executable", "restart"])
    func aVLLMSettingWithNoClusterEquivalentIsWarnedAboutOnce(_ setting: String) throws {
        var profile = Fixture.vllm()
        switch setting {
        case "ttl": profile.ttl = .minutes(10)
        case "group": profile.group = "big-gpu"
        case "executable": profile.executable = "/opt/venv/bin/vllm"
        default: profile.restart = RestartPolicy(mode: .never)
        }
        let result = try Fixture.export(profile)
        #expect(result.warnings.count == 1, "\(result.warnings)")
        let line = try #require(result.warnings.first)
        #expect(line.hasPrefix("qwen: \(setting)"), "\(line)")
    }

    @Test func restartOnFailureAndAlwaysAreNotWarnedAbout() throws {
        for mode in [RestartMode.always, .onFailure] {
            var profile = Fixture.vllm()
            profile.restart.mode = mode
            #expect(try Fixture.export(profile).warnings.isEmpty, "\(mode)")
        }
    }

    @Test func adoptingTheLocalOllamaIsDropped() throws {
        var profile = Fixture.ollama(name: "system-ollama")
        profile.adopt = true
        profile.port = .fixed(11434)
        let result = try Fixture.export(profile)
        let adopt = Self.lines(result, profile: profile, about: "adopt")
        #expect(adopt.count == 1, "\(result.warnings)")
        #expect(adopt.first?.hasPrefix("system-ollama: adopt: true") == true)
        #expect(result.service?["spec", "ports", 0, "port"]?.number == 11434)
    }

    @Test func aHealthStatusProbesCannotExpectIsWarnedAbout() throws {
        var profile = Fixture.command()
        profile.healthStatus = 503
        let result = try Fixture.export(profile)
        let status = Self.lines(result, profile: profile, about: "health_status")
        #expect(status.count == 1, "\(result.warnings)")
        #expect(status.first?.contains("503") == true)
        profile.healthStatus = 200
        #expect(Self.lines(try Fixture.export(profile), profile: profile, about: "health_status").isEmpty)
    }

    @Test(arguments: [["--chat-template", "/home/u/t.jinja"], ["--chat-template=/home/u/t.jinja"]])
    func aHostPathInTheArgsIsWarnedAboutOnce(_ args: [String]) throws {
        let profile = Fixture.vllm(args: args)
        let result = try Fixture.export(profile)
        #expect(result.warnings.count == 1, "\(result.warnings)")
        let line = try #require(result.warnings.first)
        #expect(line.hasPrefix("qwen: args: "), "\(line)")
        #expect(line.contains("/home/u/t.jinja"))
    }

    @Test func relativeAndHomePathsAreHostPathsToo() throws {
        for path in ["~/t.jinja", "./t.jinja", "../t.jinja"] {
            let result = try Fixture.export(Fixture.vllm(args: ["--chat-template", path]))
            #expect(result.warnings.count == 1, "\(path): \(result.warnings)")
        }
        let plain = try Fixture.export(Fixture.vllm(args: ["--tool-call-parser", "hermes", "--dtype=half"]))
        #expect(plain.warnings.isEmpty, "\(plain.warnings)")
    }

    @Test func aLocalModelFileIsWarnedAboutOnceNotAgainForItsPlaceholder() throws {
        let profile = Fixture.command(model: "/models/x.gguf")
        let result = try Fixture.export(profile)
        let model = result.warnings.filter { $0.contains("/models/x.gguf") }
        #expect(model.count == 1, "\(result.warnings)")
        #expect(model.first?.hasPrefix("llama-server: model: /models/x.gguf") == true)
    }

    @Test func theCommandsOwnProgramIsAHostPathUnlessTheImageNamesItsOwn() throws {
        let local = Fixture.command(command: ["/usr/local/bin/llama-server", "-m", "{model}", "--port", "{port}"])
        #expect(Self.lines(try Fixture.export(local), profile: local, about: "command: /usr/local/bin").count == 1)
        var inImage = local
        inImage.imageProgram = "/app/llama-server"
        #expect(Self.lines(try Fixture.export(inImage), profile: inImage, about: "command:").isEmpty)
    }

    @Test(arguments: ["HF_HOME", "CUDA_VISIBLE_DEVICES", "AGENTRON_LOG"])
    func aVariableThatIsNotPassedIsWarnedAboutOnce(_ key: String) throws {
        let profile = Fixture.vllm(env: [key: "/home/u/hf"])
        let result = try Fixture.export(profile)
        #expect(result.warnings.count == 1, "\(result.warnings)")
        #expect(result.warnings.first?.hasPrefix("qwen: env: \(key) is not passed") == true, "\(result.warnings)")
        #expect(result.env(key) == nil)
    }

    @Test func aVariableNamingAHostPathIsWarnedAboutUnlessSecret() throws {
        let path = Fixture.vllm(env: ["VLLM_CONFIG": "/etc/vllm.yaml"])
        let result = try Fixture.export(path)
        #expect(result.warnings.count == 1)
        #expect(result.warnings.first?.hasPrefix("qwen: env: VLLM_CONFIG=/etc/vllm.yaml") == true)
        let secret = Fixture.vllm(env: ["MY_TOKEN": "/not/a/path"])
        #expect(try Fixture.export(secret).warnings.isEmpty)
    }

    @Test func gpuIndicesAreThisMachines() throws {
        let profile = Fixture.vllm(gpus: [2, 3])
        let result = try Fixture.export(profile)
        #expect(result.warnings.count == 1, "\(result.warnings)")
        let line = try #require(result.warnings.first)
        #expect(line.hasPrefix("qwen: gpus: [2, 3]"))
        #expect(line.contains("2 GPUs"))
        #expect(Self.lines(try Fixture.export(profile), profile: profile, about: "ttl").isEmpty)
        #expect(Self.lines(try Fixture.export(profile), profile: profile, about: "group").isEmpty)
        // The option says how many: the indices are not used, and not warned about.
        #expect(try Fixture.export(profile, KubernetesOptions(gpus: 2)).warnings.isEmpty)
    }

    @Test func aPodWithoutAGPUIsWarnedAbout() throws {
        for profile in [Fixture.ollama(), Fixture.command()] {
            let result = try Fixture.export(profile)
            let line = Self.lines(result, profile: profile, about: "no GPU")
            #expect(line.count == 1, "\(profile.engine): \(result.warnings)")
            #expect(try Fixture.export(profile, KubernetesOptions(gpus: 1)).warnings.isEmpty, "\(profile.engine)")
        }
        let cpu = try Fixture.export(Fixture.vllm(), KubernetesOptions(gpus: 0))
        #expect(cpu.warnings.count == 1)
        #expect(cpu.warnings.first?.contains("--gpus") == true)
    }
}
