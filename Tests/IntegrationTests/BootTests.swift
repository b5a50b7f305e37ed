import Foundation
import Testing

/// What comes back when the daemon starts (issue #6): servers that were up when it last
/// stopped, and `autostart: true` profiles; GPU profiles wait for their devices, bounded.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BootTests {
    @Test func serversUpWhenTheDaemonStoppedComeBackAndDownedOnesDoNot() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon()
        #expect(
            try await harness.run([
                "up", "org/a", "--engine", "vllm", "--name", "wanted", "--env",
                "FAKE_PID_FILE=\(harness.pidFile("wanted").path)",
            ]).code == 0)
        #expect(try await harness.run(["up", "org/b", "--engine", "vllm", "--name", "downed"]).code == 0)
        #expect(try await harness.run(["down", "downed"]).code == 0)
        let before = try await harness.readPids("wanted")
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(before.filter(Harness.isAlive).isEmpty, "a clean stop stops the engines")
        try FileManager.default.removeItem(at: harness.pidFile("wanted"))

        try await harness.startDaemon()
        let back = try await SupervisionTests.waitFor(harness, "wanted", "started again") {
            $0["state"] as? String == "ready"
        }
        #expect((back["pid"] as? Int).map(Int32.init) != before.first)
        _ = try await harness.readPids("wanted")
        let downed = try await harness.servers(all: true).first { $0["name"] as? String == "downed" }
        #expect(downed?["state"] as? String == "stopped", "a server taken down stays down")
        #expect(try await harness.run(["down", "wanted"]).code == 0)
    }

    @Test func autostartProfilesStartWithTheDaemon() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let profiles = harness.home.appendingPathComponent("config/profiles")
        try FileManager.default.createDirectory(at: profiles, withIntermediateDirectories: true)
        try "engine: vllm\nmodel: org/boot\nautostart: true\n".write(
            to: profiles.appendingPathComponent("boot.yaml"), atomically: true, encoding: .utf8)
        try "engine: vllm\nmodel: org/manual\n".write(
            to: profiles.appendingPathComponent("manual.yaml"), atomically: true, encoding: .utf8)
        try await harness.startDaemon()
        _ = try await SupervisionTests.waitFor(harness, "boot", "autostarted") { $0["state"] as? String == "ready" }
        #expect(try await harness.servers(all: true).contains { $0["name"] as? String == "manual" } == false)
        #expect(try await harness.run(["down", "boot"]).code == 0)
    }

    @Test func aGPUProfileWaitsForItsDevicesThenSaysWhyItDidNotStart() async throws {
        try #require(
            !FileManager.default.fileExists(atPath: "/dev/nvidia0"), "this machine has a GPU; the wait would pass")
        let harness = try Harness()
        defer { harness.shutdown() }
        let profiles = harness.home.appendingPathComponent("config/profiles")
        try FileManager.default.createDirectory(at: profiles, withIntermediateDirectories: true)
        try "engine: vllm\nmodel: org/gpu\ngpus: [0]\nautostart: true\n".write(
            to: profiles.appendingPathComponent("gpu.yaml"), atomically: true, encoding: .utf8)
        try await harness.startDaemon(environment: ["AGENTRON_GPU_WAIT": "1s"])
        #expect(try await harness.servers(all: true).isEmpty, "nothing starts before the devices appear")
        let failed = try await SupervisionTests.waitFor(harness, "gpu", "failed after the wait") {
            $0["state"] as? String == "failed"
        }
        let reason = failed["reason"] as? String ?? ""
        #expect(reason.contains("/dev/nvidia0"), "\(reason)")
        #expect(reason.contains("did not appear within 1s"))
    }

    @Test func upOfALocalModelDirectoryPassesItAbsolute() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let model = harness.home.appendingPathComponent("models/tiny-llama")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let process = try await harness.run(["up", model.path, "--engine", "vllm"])
        #expect(process.code == 0, "\(process.stderr)")
        let server = try #require(try await harness.servers().first)
        #expect(server["name"] as? String == "tiny-llama")
        #expect(server["model"] as? String == model.path)
        let logs = try await harness.run(["logs", "tiny-llama"])
        #expect(logs.stdout.contains("vllm serve \(model.path) "))
        #expect(try await harness.run(["down", "tiny-llama"]).code == 0)
    }
}
