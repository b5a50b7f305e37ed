import Foundation
import Testing

/// `scripts/install` lays agentron out under a prefix, and the installed pair works with
/// nothing of the build tree: built-in profiles from share/agentron/profiles, the TGI
/// shim from libexec/agentron (issue #13, "Install like a package").
@Suite(.serialized, .timeLimit(.minutes(3)))
struct InstallTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func anInstalledAgentronRunsBuiltinProfilesAndTheTGIPath() async throws {
        let docker = try await TGIEngineTests.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        let prefix = harness.home.appendingPathComponent("prefix")
        let install = try Harness.capture(
            Self.repository.appendingPathComponent("scripts/install").path,
            ["--from", harness.binDirectory.path, "--no-man", "--prefix", prefix.path])
        #expect(install.code == 0, "\(install.output)")
        for file in [
            "bin/agentron", "bin/agentrond", "libexec/agentron/agentron-container-shim",
            "share/agentron/profiles/qwen2.5-1.5b-instruct.yaml", "share/agentron/units/agentrond.service",
            "share/bash-completion/completions/agentron", "share/zsh/site-functions/_agentron",
            "share/fish/vendor_completions.d/agentron.fish", "share/agentron/install-manifest",
        ] {
            #expect(FileManager.default.fileExists(atPath: prefix.appendingPathComponent(file).path), "\(file)")
        }
        #expect(
            !FileManager.default.fileExists(atPath: prefix.appendingPathComponent("bin/fake-engine").path),
            "only agentron's own programs")

        // The installed pair, with nothing of the build tree.
        harness.cli = prefix.appendingPathComponent("bin/agentron")
        try await harness.startDaemon(executable: prefix.appendingPathComponent("bin/agentrond"))
        let listed = try await harness.run(["profiles", "list", "--json"])
        let entries = try #require(
            try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]], "\(listed.stderr)")
        let qwen = try #require(entries.first { $0["name"] as? String == "qwen2.5-1.5b-instruct" })
        #expect((qwen["path"] as? String)?.hasPrefix(prefix.path + "/share/agentron/profiles/") == true, "\(qwen)")

        let up = try await harness.run(["up", try TGIEngineTests.profile(harness, name: "installed-tgi")])
        #expect(up.code == 0, "the daemon found its shim in libexec: \(up.stderr)")
        #expect(try await TGIEngineTests.containers(docker, server: "installed-tgi").count == 1)
        #expect(try await harness.run(["down", "installed-tgi"]).code == 0)
        #expect(try await TGIEngineTests.containers(docker, server: "installed-tgi").isEmpty)

        // scripts/uninstall takes back every file.
        let uninstall = try Harness.capture(
            Self.repository.appendingPathComponent("scripts/uninstall").path, ["--prefix", prefix.path])
        #expect(uninstall.code == 0, "\(uninstall.output)")
        let left = FileManager.default.enumerator(atPath: prefix.path)?.allObjects.count ?? 0
        #expect(left == 0, "nothing of the install is left")
    }
}
