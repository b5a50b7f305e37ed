import AgentronConfig
import AgentronCore
import AgentronEngines
import Testing

/// Issue #10: one set of limits for every profile, and no value that passes them (or any
/// that does not) can make a conversion trap.
struct ProfileValidationTests {
    @Test(arguments: [1e300, .infinity, -.infinity, .nan, -1, 9.3e15, 0])
    func timeSpansConvertWithoutTrapping(_ seconds: Double) {
        let span = TimeSpan(seconds: seconds)
        let duration = span.duration
        #expect(duration >= .zero)
        #expect(!span.description.isEmpty)
        if seconds > 1e16 { #expect(span.milliseconds == .max) }
        if !(seconds > 0) { #expect(span.milliseconds == 0) }
    }

    @Test func theDaemonsLimitsRefuseWhatTheYAMLReaderRefuses() throws {
        var profile = Profile(name: "x", engine: .vllm, model: "m")
        #expect(profile.validationProblem == nil)
        profile.startupTimeout = .seconds(1e300)
        #expect(profile.validationProblem?.field == "startup_timeout")
        profile.startupTimeout = .seconds(.nan)
        #expect(profile.validationProblem?.field == "startup_timeout")
        profile = Profile(name: "x", engine: .vllm, model: "m", stopTimeout: .seconds(-1))
        #expect(profile.validationProblem?.field == "stop_timeout")
        profile = Profile(name: "x", engine: .vllm, model: "m", port: .fixed(70_000))
        #expect(profile.validationProblem?.field == "port")
        profile = Profile(name: "x", engine: .vllm, model: "m", gpus: [0, 0])
        #expect(profile.validationProblem?.field == "gpus[1]")
        profile = Profile(name: "x", engine: .vllm, model: "m", env: ["A=B": "1"])
        #expect(profile.validationProblem?.field == "env.A=B")
        profile = Profile(name: "x", engine: .vllm, model: "m", command: ["x"])
        #expect(Engines.problem(in: profile)?.field == "command", "a key the engine does not take: its driver's rule")
        profile = Profile(name: "x", engine: .vllm, model: "m")
        profile.restart.factor = .infinity
        #expect(profile.validationProblem?.field == "restart.factor")
        profile = Profile(name: "x", engine: .vllm, model: "m", args: ["a\u{0}b"])
        #expect(profile.validationProblem?.field == "args[0]")
        profile = Profile(name: "x", engine: .vllm, model: String(repeating: "m", count: 5000))
        #expect(profile.validationProblem?.field == "model")
    }

    @Test func theYAMLReaderReportsALimitWithItsLine() throws {
        let yaml = "engine: vllm\nmodel: org/m\nprobe:\n  failure_threshold: 99999999\n"
        let error = try #require(throws: ProfileError.self) { try Profile.parse(yaml: yaml, file: "p.yaml") }
        #expect(error.line == 4, "the line of the probe: mapping")
        #expect(error.field == "probe.failure_threshold")
    }

    /// `ollama serve` accepts no arguments (cobra.ExactArgs(0) in Ollama's cmd/cmd.go): args
    /// are refused for engine ollama, by the daemon and with the YAML file's line.
    @Test func ollamaArgsAreRefusedWithTheirLine() throws {
        let profile = Profile(name: "x", engine: .ollama, model: "llama3.2:1b", args: ["--verbose"])
        #expect(Engines.problem(in: profile)?.field == "args")
        #expect(Engines.problem(in: profile)?.message.hasPrefix("ollama serve takes no arguments") == true)
        #expect(Engines.problem(in: Profile(name: "x", engine: .ollama, model: "llama3.2:1b")) == nil)
        let yaml = "engine: ollama\nmodel: llama3.2:1b\nargs: [--verbose]\n"
        let error = try #require(throws: ProfileError.self) { try Profile.parse(yaml: yaml, file: "p.yaml") }
        #expect(error.file == "p.yaml" && error.line == 3 && error.field == "args", "\(error)")
        #expect(error.description.hasPrefix("p.yaml:3:7: args: ollama serve takes no arguments"), "\(error)")
        #expect(error.message.contains("set them under env:"))
    }

    /// Thousands of generated profiles: each is refused with a ProfileError or passes the
    /// daemon's limits; none traps.
    @Test func generatedProfilesNeverTrapAndWhatParsesIsValid() {
        let values = [
            "1e300", "-1", "0", "nan", ".inf", "-.inf", "9223372036854775807", "9223372036854775808",
            "99999999999999999999",
            "\"\"", "[]", "{}", "[1, 1]", "null", "~", "yes", "auto", "\"8080\"", "1e300s", "5x", "-5s", "0.0001ms",
            "1.5",
            "[--a, \"\\0\"]", "{A: 1}", "{\"A=B\": 1}", "[\"sleep\", \"{port}\"]", "/health", "999", "65536",
            String(repeating: "x", count: 5000), "&a [*a, *a]", "!!binary aGk=", "\"\\u0000\"",
        ]
        let keys =
            Profile.yamlKeys + Profile.yamlProbeKeys.map { "probe.\($0)" }
            + Profile.yamlRestartKeys.map { "restart.\($0)" }
        var state: UInt64 = 0x1234_5678
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for _ in 0..<3000 {
            var lines = ["engine: \(["vllm", "ollama", "tgi", "command"][next(4)])", "model: org/m"]
            for _ in 0..<(1 + next(3)) {
                let key = keys[next(keys.count)]
                let value = values[next(values.count)]
                if let dot = key.firstIndex(of: ".") {
                    lines.append("\(key[..<dot]):\n  \(key[key.index(after: dot)...]): \(value)")
                } else {
                    lines.append("\(key): \(value)")
                }
            }
            let yaml = lines.joined(separator: "\n") + "\n"
            do {
                let profile = try Profile.parse(yaml: yaml, file: "fuzz.yaml")
                #expect(Engines.problem(in: profile) == nil, "parsed but refused by the daemon: \(yaml)")
                _ = profile.startupTimeout.duration
                _ = profile.stopTimeout.description
            } catch {
                #expect(!error.description.isEmpty)
            }
        }
    }
}

/// What counts as a secret: words, not substrings (a review found `--max-num-batched-tokens
/// 8192` blanking every "8192" in the logs).
struct SecretNameTests {
    @Test(arguments: [
        "HF_TOKEN", "VLLM_API_KEY", "OPENAI_APIKEY", "HUGGING_FACE_HUB_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY",
    ])
    func secretVariables(_ name: String) { #expect(Profile.isSecretKey(name)) }

    @Test(arguments: ["TOKENIZERS_PARALLELISM", "MAX_TOKENS", "HF_HOME", "KEYBOARD", "CUDA_VISIBLE_DEVICES"])
    func settingsThatAreNotSecrets(_ name: String) { #expect(!Profile.isSecretKey(name)) }

    @Test(arguments: ["--api-key", "--hf-token", "--token", "--password", "--secret-key", "--api_key"])
    func secretFlags(_ flag: String) { #expect(Profile.isSecretFlag(flag)) }

    @Test(arguments: [
        "--max-num-batched-tokens", "--tokenizer", "--tokenizer-mode", "--max-total-tokens", "--ssl-keyfile",
        "--keep-alive",
    ])
    func flagsThatAreNotSecrets(_ flag: String) { #expect(!Profile.isSecretFlag(flag)) }

    @Test func onlySecretValuesAreBlanked() {
        let profile = Profile(
            name: "x", engine: .vllm, model: "org/m",
            args: ["--max-num-batched-tokens", "8192", "--tokenizer", "org/m", "--api-key", "sk-0123456789"],
            env: ["TOKENIZERS_PARALLELISM": "false", "HF_TOKEN": "hf_abcdefghij"])
        let line = "tokenizer org/m batched 8192 parallel false key sk-0123456789 token hf_abcdefghij"
        #expect(profile.redact(line) == "tokenizer org/m batched 8192 parallel false key <redacted> token <redacted>")
        #expect(
            Profile.redactArguments(profile.args) == [
                "--max-num-batched-tokens", "8192", "--tokenizer", "org/m", "--api-key", "<redacted>",
            ])
    }
}
