import AgentronHTTP
import Foundation
import Testing

/// TGI through a real Docker daemon (issue #5). `scripts/test` starts dockerd
/// (`scripts/start-dockerd`) and builds the image from the FakeEngine in TGI mode with no
/// registry (`scripts/tgi-test-image`).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TGIEngineTests {
    static let image = "agentron-test/tgi-fake:latest"

    static func requireDocker() async throws -> DockerClient {
        let docker = DockerClient(socketPath: "/var/run/docker.sock")
        do {
            _ = try await docker.version()
        } catch {
            Issue.record("Docker is needed for the TGI tests: run scripts/start-dockerd (\(error))")
            throw error
        }
        guard try await docker.imageExists(image) else {
            Issue.record("the test image is missing: run scripts/tgi-test-image")
            throw HarnessError("no \(image)")
        }
        return docker
    }

    static func profile(
        _ harness: Harness, name: String, image: String = TGIEngineTests.image, env: [String: String] = [:], extra: String = ""
    ) throws -> String {
        var yaml = "name: \(name)\nengine: tgi\nmodel: org/tiny\nimage: \(image)\nstop_timeout: 15s\n" + extra
        if !env.isEmpty {
            yaml += "env:\n" + env.sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"\n" }.joined()
        }
        let path = harness.home.appendingPathComponent("\(name).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func containers(_ docker: DockerClient, server: String) async throws -> [DockerClient.ContainerSummary] {
        try await docker.containers(label: "agentron.server", value: server)
    }

    @Test func upReadyLogsDownLeavesNoContainer() async throws {
        let docker = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run(["up", try Self.profile(harness, name: "tgi1")])
        #expect(up.code == 0, "\(up.stderr)")
        #expect(up.stdout.contains("model     tgi"), "TGI serves its model as \"tgi\"")
        let server = try #require(try await harness.servers().first)
        let endpoint = try #require(server["endpoint"] as? String)
        let running = try await Self.containers(docker, server: "tgi1")
        #expect(running.count == 1)
        #expect(running.first?.State == "running")
        #expect(running.first?.Labels?["agentron.managed"] == "true")
        // The daemon's random identity, not a path another daemon could share (issue #10).
        let instance = try String(contentsOf: harness.home.appendingPathComponent("state/instance-id"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(instance.count == 32)
        #expect(running.first?.Labels?["agentron.instance"] == instance)

        let body = #"{"model":"tgi","messages":[{"role":"user","content":"hi"}]}"#
        let chat = try await HTTPClient.shared.execute(HTTPRequest(
            method: "POST", url: endpoint + "/v1/chat/completions", headers: [("Content-Type", "application/json")],
            body: Array(body.utf8), timeout: .seconds(10)))
        #expect(chat.status == 200)

        let logs = try await harness.run(["logs", "tgi1", "--tail", "200"])
        #expect(logs.stdout.contains("started container"), "the shim's lines")
        #expect(logs.stdout.contains("text_generation"), "the container's own output, demultiplexed: \(logs.stdout)")

        let shimPid = (server["pid"] as? Int).map(Int32.init)
        #expect(try await harness.run(["down", "tgi1"]).code == 0)
        #expect(try await Self.containers(docker, server: "tgi1").isEmpty, "container removed")
        if let shimPid { #expect(!Harness.isAlive(shimPid)) }
    }

    @Test func aDaemonKill9LeavesTheContainerServingAndTheNextDaemonReadoptsIt() async throws {
        let docker = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon()
        #expect(try await harness.run(["up", try Self.profile(harness, name: "tgi2")]).code == 0)
        let before = try #require(try await harness.servers().first)
        let endpoint = try #require(before["endpoint"] as? String)
        let container = try #require(try await Self.containers(docker, server: "tgi2").first)

        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        let health = try await HTTPClient.shared.execute(HTTPRequest(url: endpoint + "/health", timeout: .seconds(5)))
        #expect(health.status == 200, "serving through the outage")

        try await harness.startDaemon()
        let after = try await SupervisionTests.waitFor(harness, "tgi2", "re-adopted") { $0["state"] as? String == "ready" }
        #expect(after["pid"] as? Int == before["pid"] as? Int, "the same shim, not restarted")
        #expect(try await Self.containers(docker, server: "tgi2").first?.Id == container.Id, "the same container")
        #expect(try await harness.run(["down", "tgi2"]).code == 0)
        #expect(try await Self.containers(docker, server: "tgi2").isEmpty)
    }

    @Test func aMissingImageIsOneClearError() async throws {
        _ = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", try Self.profile(harness, name: "tgi3", image: "agentron-test/no-such-image:1", extra: "pull: never\n"),
        ])
        #expect(up.code == 1)
        #expect(up.stderr.contains("image agentron-test/no-such-image:1 is not present and the profile says pull: never"), "\(up.stderr)")
        #expect(up.stderr.contains("docker pull agentron-test/no-such-image:1"))
    }

    @Test func dockerNotRunningIsOneClearError() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon(environment: ["DOCKER_HOST": "unix:///nonexistent/docker.sock"])
        let up = try await harness.run(["up", try Self.profile(harness, name: "tgi4")])
        #expect(up.code == 1)
        #expect(up.stderr.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"), "\(up.stderr)")
    }
}
