import Foundation
import Testing

/// The engine that runs is the one the caller's PATH finds, even when the daemon was
/// started earlier without it (issue #13: "vllm: command not found on PATH", reproduced
/// before this); `--env KEY` passes the caller's value without putting it in argv.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CallersEngineTests {
    @Test func aVenvOnlyEngineRunsAndEnvKeyPassesTheCallersValue() async throws {
        let harness = try Harness(withFakeVLLM: false)
        defer { harness.shutdown() }
        // The daemon's PATH has no vllm.
        try await harness.startDaemon(environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"])
        let venv = harness.home.appendingPathComponent("venv")
        let bin = venv.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: bin.appendingPathComponent("vllm"),
            withDestinationURL: harness.binDirectory.appendingPathComponent("fake-engine"))
        let caller = [
            "PATH": bin.path + ":/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": venv.path,
            "HF_TOKEN": "hf_from_the_shell",
        ]
        let up = try await harness.run(
            ["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "venv", "--env", "HF_TOKEN"],
            environment: caller)
        #expect(up.code == 0, "\(up.stderr)")

        let inspect = try harness.json(try await harness.run(["inspect", "venv", "--json"]).stdout)
        let pid = try #require(inspect["pid"] as? Int)
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
        let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(variables.contains("VIRTUAL_ENV=\(venv.path)"))
        #expect(variables.contains("HF_TOKEN=hf_from_the_shell"))
        let argv = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).split(separator: 0).map {
            String(decoding: $0, as: UTF8.self)
        }
        #expect(argv.first == bin.appendingPathComponent("vllm").path, "\(argv)")
        #expect(!argv.contains { $0.contains("hf_from_the_shell") }, "the token is not in argv")

        // Without it in the caller's environment: one line, nothing started.
        let unset = try await harness.run(
            ["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "other", "--env", "NOT_SET_ANYWHERE"],
            environment: caller)
        #expect(unset.code == 64, "\(unset.stderr)")
        #expect(unset.stderr.contains("NOT_SET_ANYWHERE is not set in your environment"), "\(unset.stderr)")
        #expect(try await harness.run(["down", "venv"]).code == 0)
    }
}
