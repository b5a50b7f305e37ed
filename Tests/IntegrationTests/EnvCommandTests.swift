import Foundation
import Testing

/// `eval "$(agentron env <name>)"` configures an OpenAI client (issue #13, "What apps
/// need"): a server's own endpoint and served name, a model through the gateway, the key
/// only when asked, and a stable exit status for a name nothing answers to.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct EnvCommandTests {
    /// Runs `script` in sh with the CLI on PATH and the harness's environment.
    static func shell(_ harness: Harness, _ script: String) throws -> (code: Int32, output: String) {
        var environment = harness.environment
        environment["PATH"] = harness.binDirectory.path + ":" + (environment["PATH"] ?? "")
        return try Harness.capture("/bin/sh", ["-c", script], environment: environment)
    }

    /// A chat completion made from nothing but the three variables.
    static let request = #"""
        curl -sS --fail-with-body "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" \
          -H 'Content-Type: application/json' \
          -d "{\"model\": \"$OPENAI_MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"hello env\"}]}"
        """#

    @Test func evalOfEnvConfiguresAClient() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await GatewayTests.start(harness)
        #expect(
            try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"]).code == 0)

        let printed = try await harness.run(["env", "qwen"])
        #expect(printed.code == 0, "\(printed.stderr)")
        let server = try #require(try await harness.servers().first)
        let endpoint = try #require(server["endpoint"] as? String)
        #expect(
            printed.stdout
                == "export OPENAI_BASE_URL='\(endpoint)/v1'\nexport OPENAI_MODEL='qwen'\nexport OPENAI_API_KEY='none'\n"
        )
        let direct = try Self.shell(harness, "eval \"$(agentron env qwen)\" && " + Self.request)
        #expect(direct.code == 0 && direct.output.contains("hello env"), "\(direct.output)")

        // A profile nothing runs yet: through the gateway, which starts it.
        try GatewayTests.profile(harness, "tiny", "engine: vllm\nmodel: Qwen/Qwen2.5-0.5B-Instruct\naliases: [mini]\n")
        let json = try harness.json(try await harness.run(["env", "mini", "--json"]).stdout)
        #expect(json["OPENAI_BASE_URL"] as? String == gateway + "/v1")
        #expect(json["OPENAI_MODEL"] as? String == "mini")
        let viaGateway = try Self.shell(harness, "eval \"$(agentron env mini)\" && " + Self.request)
        #expect(viaGateway.code == 0 && viaGateway.output.contains("hello env"), "\(viaGateway.output)")

        let unknown = try await harness.run(["env", "nothing-by-this-name"])
        #expect(unknown.code == 2, "not found has its own exit status: \(unknown.stderr)")
        #expect(unknown.stderr.contains("no server named nothing-by-this-name"))
    }

    @Test func aKeyIsPrintedOnlyWhenAskedFor() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "keyed", "--env", "VLLM_API_KEY=sk-it's",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let hidden = try await harness.run(["env", "keyed"])
        #expect(hidden.code == 0)
        #expect(!hidden.stdout.contains("OPENAI_API_KEY") && !hidden.stdout.contains("sk-it"))
        #expect(hidden.stderr.contains("--show-key"))
        let shown = try await harness.run(["env", "keyed", "--show-key"])
        #expect(shown.stdout.contains("export OPENAI_API_KEY='sk-it'\\''s'\n"), "quoted for the shell: \(shown.stdout)")
        let keyed = try Self.shell(harness, "eval \"$(agentron env keyed --show-key)\" && " + Self.request)
        #expect(keyed.code == 0 && keyed.output.contains("hello env"), "the engine took the key: \(keyed.output)")
        #expect(try await harness.run(["down", "keyed"]).code == 0)
    }
}
