import Foundation
import Testing

/// `agentron export kubernetes` through the real CLI (issue #15): manifests on stdout or in a
/// file, warnings and the Secret's command on stderr, one clear line and a non-zero exit
/// for what cannot be exported, and a running server's profile from the daemon. The
/// manifests themselves are checked against the Kubernetes schemas by
/// scripts/check-kubernetes, and field by field by AgentronExportTests.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ExportKubernetesTests {
    @Test func aBuiltInProfileBecomesManifestsOnStdoutOrInAFile() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let printed = try await harness.run(["export", "kubernetes", "qwen2.5-1.5b-instruct"])
        #expect(printed.code == 0, "\(printed.stderr)")
        for kind in ["PersistentVolumeClaim", "Deployment", "Service"] {
            #expect(printed.stdout.contains("\nkind: \(kind)\n"), "\(kind) missing")
        }
        #expect(printed.stdout.contains("image: vllm/vllm-openai:v0.32.0"))
        #expect(printed.stdout.contains("- --served-model-name\n            - qwen2.5-1.5b-instruct\n"))
        #expect(printed.stdout.contains("nvidia.com/gpu: 1"))
        // HF_TOKEN comes from a Secret, which the user makes with the printed command.
        #expect(
            printed.stderr.contains(
                #"kubectl create secret generic qwen2-5-1-5b-instruct-secrets --from-literal=HF_TOKEN="$HF_TOKEN""#),
            "\(printed.stderr)")

        let file = harness.home.appendingPathComponent("qwen.yaml")
        let written = try await harness.run(["export", "k8s", "qwen2.5-1.5b-instruct", "-o", file.path])
        #expect(written.code == 0, "\(written.stderr)")
        #expect(written.stdout.isEmpty)
        #expect(written.stderr.contains("wrote 3 objects to \(file.path)"))
        #expect(try String(contentsOf: file, encoding: .utf8) == printed.stdout)
    }

    @Test func settingsWithNoKubernetesEquivalentWarnAndSecretsStayOut() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try harness.writeProfile(
            "chatty",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            ttl: 10m
            group: small-gpu
            args: [--chat-template, /home/me/template.jinja]
            env:
              VLLM_API_KEY: sk-local-secret-value-123
            """)
        let result = try await harness.run(["export", "kubernetes", "chatty", "--namespace", "ml"])
        #expect(result.code == 0, "\(result.stderr)")
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: chatty: ") }
        #expect(warnings.contains { $0.contains("ttl: 10m dropped") && $0.contains("scale-to-zero") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("group: small-gpu dropped") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("args: /home/me/template.jinja is a path on this machine") })
        #expect(warnings.count == 3, "one line per setting: \(warnings)")
        #expect(!result.stdout.contains("sk-local-secret-value-123"))
        #expect(!result.stderr.contains("sk-local-secret-value-123"))
        #expect(result.stdout.contains("key: VLLM_API_KEY\n"))
        #expect(result.stdout.contains("namespace: ml\n"))
        #expect(
            result.stderr.contains(
                #"kubectl create secret generic chatty-secrets --namespace ml --from-literal=HF_TOKEN="$HF_TOKEN" --from-literal=VLLM_API_KEY="$VLLM_API_KEY""#
            )
                || result.stderr.contains(
                    #"--from-literal=VLLM_API_KEY="$VLLM_API_KEY" --from-literal=HF_TOKEN="$HF_TOKEN""#),
            "\(result.stderr)")
    }

    @Test func whatCannotBeExportedIsOneClearLineAndNoOutput() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try harness.writeProfile(
            "script",
            """
            engine: command
            model: tiny
            command: [my-server, --port, "{port}"]
            """)
        let refused = try await harness.run(["export", "kubernetes", "script"])
        #expect(refused.code == 1)
        #expect(refused.stdout.isEmpty, "nothing half-written: \(refused.stdout)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("error: script: engine command has no image"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--image"))

        let given = try await harness.run(["export", "kubernetes", "script", "--image", "registry.example/my-server:1"])
        #expect(given.code == 0, "\(given.stderr)")
        #expect(given.stdout.contains("image: registry.example/my-server:1"))
        #expect(given.stdout.contains("- my-server\n"))

        let unknown = try await harness.run(["export", "kubernetes", "no-such-profile"])
        #expect(unknown.code == 2 && unknown.stderr.contains("no profile named"), "\(unknown.stderr)")
        let badCache = try await harness.run(["export", "kubernetes", "qwen2.5-1.5b-instruct", "--cache", "nfs"])
        #expect(badCache.code == 64 && badCache.stderr.contains("--cache"), "\(badCache.stderr)")
        let badReplicas = try await harness.run(["export", "kubernetes", "qwen2.5-1.5b-instruct", "--replicas", "0"])
        #expect(badReplicas.code == 64 && badReplicas.stderr.contains("--replicas"), "\(badReplicas.stderr)")
        #expect(badReplicas.stdout.isEmpty)
    }

    @Test func aRunningServerStartedFromFlagsExportsFromTheDaemon() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run(["up", "org/tiny-model", "--engine", "vllm", "--name", "tiny"])
        #expect(up.code == 0, "\(up.stderr)")
        let exported = try await harness.run(["export", "kubernetes", "tiny"])
        #expect(exported.code == 0, "\(exported.stderr)")
        #expect(exported.stdout.contains("- org/tiny-model\n"))
        #expect(exported.stdout.contains("name: tiny\n"))
        #expect(try await harness.run(["down", "tiny"]).code == 0)
    }
}
