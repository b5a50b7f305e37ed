import AgentronCore
import AgentronEngines
import Testing

@testable import AgentronExport

/// The container runs the argv of the local launch (built by the same code), with the
/// container's address, and is refused where the local launch is.
@Suite struct ContainerArgvTests {
    static func context(_ profile: Profile, port: Int) -> EngineContext {
        EngineContext(profile: profile, port: port, daemonEnvironment: ["PATH": "/usr/bin:/bin", "HOME": "/home/a"])
    }

    /// `arguments` with the local host and port replaced by the container's.
    static func substituted(_ arguments: [String], host: String, port: Int, by newPort: Int) -> [String] {
        arguments.map { $0 == host ? "0.0.0.0" : $0 == String(port) ? String(newPort) : $0 }
    }

    @Test func vllmRunsTheLocalArgvOnTheContainersAddress() throws {
        let profile = Fixture.vllm(args: ["--max-model-len", "8192", "--gpu-memory-utilization", "0.90"])
        let launch = try VLLMEngine().launch(Self.context(profile, port: 8123))
        let result = try Fixture.export(profile)
        let command = try #require(result.container?["command"]?.strings)
        #expect(command == Self.substituted(launch.arguments, host: "127.0.0.1", port: 8123, by: 8000))
        #expect(
            command == [
                "vllm", "serve", Fixture.vllmModel, "--host", "0.0.0.0", "--port", "8000", "--served-model-name",
                "qwen", "--max-model-len", "8192", "--gpu-memory-utilization", "0.90",
            ])
        #expect(result.container?["args"] == nil)
        #expect(result.container?["image"]?.text == VLLMEngine.image)
    }

    @Test func vllmRunsTheImagesProgramNotThisMachinesExecutable() throws {
        var profile = Fixture.vllm()
        profile.executable = "/opt/venv/bin/vllm"
        let command = try #require(try Fixture.export(profile).container?["command"]?.strings)
        #expect(command.first == "vllm")
        #expect(!command.contains("/opt/venv/bin/vllm"))
    }

    @Test func tgiGivesTheLaunchersArgumentsAfterTheShimsSeparator() throws {
        let profile = Fixture.tgi(args: ["--max-input-tokens", "4096"])
        let launch = try TGIEngine().launch(Self.context(profile, port: 8124))
        let separator = try #require(launch.arguments.firstIndex(of: "--"))
        let result = try Fixture.export(profile)
        #expect(result.container?["args"]?.strings == Array(launch.arguments[(separator + 1)...]))
        #expect(
            result.container?["args"]?.strings == [
                "--model-id", "meta-llama/Llama-3.2-1B-Instruct", "--port", "80", "--max-total-tokens", "8192",
                "--max-input-tokens", "4096",
            ])
        #expect(result.container?["command"] == nil, "the image's entrypoint is the launcher")
    }

    @Test func commandFillsItsPlaceholdersWithTheContainersAddress() throws {
        let profile = Fixture.command(
            model: "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            command: ["llama-server", "-hf", "{model}", "--host", "{host}", "--port={port}", "--alias", "{name}"])
        let launch = try CommandEngine().launch(Self.context(profile, port: 8125))
        let result = try Fixture.export(profile)
        let command = try #require(result.container?["command"]?.strings)
        let expected = [
            "llama-server", "-hf", "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "--host", "0.0.0.0", "--port=8080", "--alias",
            "llama-server", "--ctx-size", "8192",
        ]
        #expect(command == expected)
        #expect(
            command
                == launch.arguments.map {
                    $0 == "127.0.0.1" ? "0.0.0.0" : $0.replacing("8125", with: "8080")
                })
        #expect(result.container?["ports", 0, "containerPort"]?.number == 8080)
        #expect(result.container?["args"] == nil)
    }

    @Test func commandListensOnTheProfilesFixedPort() throws {
        let profile = Fixture.command(port: .fixed(9000))
        let result = try Fixture.export(profile)
        let command = try #require(result.container?["command"]?.strings)
        #expect(command.contains("9000"))
        #expect(!command.contains("8080"))
        #expect(result.container?["ports", 0, "containerPort"]?.number == 9000)
        #expect(result.service?["spec", "ports", 0, "port"]?.number == 9000)
    }

    @Test func imageProgramReplacesTheFirstWordOnly() throws {
        let profile = Fixture.command(imageProgram: "/app/llama-server")
        let command = try #require(try Fixture.export(profile).container?["command"]?.strings)
        #expect(command.first == "/app/llama-server")
        #expect(
            Array(command.dropFirst()) == ["-m", profile.model, "--host", "0.0.0.0", "--port", "8080"] + profile.args)
    }

    @Test func aCommandProfileWithoutAnImageNeedsTheImageOption() throws {
        let profile = Fixture.command(name: "bare", image: nil)
        #expect(throws: ExportError.noImage(profile: "bare")) { try Fixture.export(profile) }
        let result = try Fixture.export(profile, KubernetesOptions(image: "ghcr.io/ggml-org/llama.cpp:server"))
        #expect(result.container?["image"]?.text == "ghcr.io/ggml-org/llama.cpp:server")
        #expect(ExportError.noImage(profile: "bare").description.hasPrefix("bare: "))
    }

    // MARK: Refused as locally

    @Test(arguments: ["--port", "--host=0.0.0.0", "--served-model-name", "--api-key"])
    func vllmFlagsTheLocalLaunchRefusesAreRefused(_ flag: String) throws {
        let profile = Fixture.vllm(args: [flag, "x"])
        let local = #expect(throws: EngineError.self) { try VLLMEngine().launch(Self.context(profile, port: 8001)) }
        let refusal = try #require(local)
        let error = #expect(throws: ExportError.self) { try Fixture.export(profile) }
        #expect(error == .engine(profile: "qwen", refusal))
        #expect(error?.description.hasPrefix("qwen: ") == true)
    }

    @Test func tgiFlagsAgentronSetsAreRefused() {
        let profile = Fixture.tgi(name: "t", args: ["--model-id", "other"])
        #expect(
            throws: ExportError.engine(
                profile: "t", .invalidProfile("args: --model-id is set by agentron for TGI; remove it from args"))
        ) { try Fixture.export(profile) }
    }

    @Test func ollamaArgumentsAndAddressAreRefused() {
        var withArgs = Fixture.ollama(name: "o")
        withArgs.args = ["--verbose"]
        let withHost = Fixture.ollama(name: "o", env: ["OLLAMA_HOST": "0.0.0.0:1"])
        for profile in [withArgs, withHost] {
            let error = #expect(throws: ExportError.self) { try Fixture.export(profile) }
            guard case .engine(let name, .invalidProfile) = error else {
                Issue.record("expected the engine's refusal, got \(String(describing: error))")
                continue
            }
            #expect(name == "o")
        }
    }

    @Test func aCommandProfileWithoutACommandIsRefused() {
        let profile = Fixture.command(name: "c", command: [])
        let error = #expect(throws: ExportError.self) { try Fixture.export(profile) }
        guard case .engine(let name, .invalidProfile) = error else {
            Issue.record("expected the engine's refusal, got \(String(describing: error))")
            return
        }
        #expect(name == "c")
    }
}
