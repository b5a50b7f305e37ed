import AgentronEngines
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
        _ harness: Harness, name: String, image: String = TGIEngineTests.image, env: [String: String] = [:],
        extra: String = ""
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
        let chat = try await HTTPClient.shared.execute(
            HTTPRequest(
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
        let after = try await SupervisionTests.waitFor(harness, "tgi2", "re-adopted") {
            $0["state"] as? String == "ready"
        }
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
            "up",
            try Self.profile(harness, name: "tgi3", image: "agentron-test/no-such-image:1", extra: "pull: never\n"),
        ])
        #expect(up.code == 4)
        #expect(
            up.stderr.contains("image agentron-test/no-such-image:1 is not present and the profile says pull: never"),
            "\(up.stderr)")
        #expect(up.stderr.contains("docker pull agentron-test/no-such-image:1"))
    }

    @Test func dockerNotRunningIsOneClearError() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon(environment: ["DOCKER_HOST": "unix:///nonexistent/docker.sock"])
        let up = try await harness.run(["up", try Self.profile(harness, name: "tgi4")])
        #expect(up.code == 4)
        #expect(up.stderr.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"), "\(up.stderr)")
    }

    // MARK: The container's shape (issue: real engines, not our picture of them)

    /// `GET /containers/{id}/json` from the real dockerd.
    static func inspect(_ id: String) async throws -> [String: Any] {
        let response = try await HTTPClient.shared.execute(
            HTTPRequest(
                url: "http://localhost/containers/\(id)/json", unixSocketPath: "/var/run/docker.sock",
                timeout: .seconds(10)))
        #expect(response.status == 200)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func aHostHFHomeIsMountedAtDataAndNoHostPathEntersTheContainer() async throws {
        let docker = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let cache = harness.home.appendingPathComponent("hf-cache").path
        let profile = try Self.profile(
            harness, name: "tgi5",
            env: ["HF_HOME": cache, "HF_HUB_CACHE": cache + "/hub", "HUGGINGFACE_HUB_CACHE": cache + "/hub"])
        let up = try await harness.run(["up", profile])
        #expect(up.code == 0, "\(up.stderr)")
        let container = try #require(try await Self.containers(docker, server: "tgi5").first)
        let info = try await Self.inspect(container.Id)
        let env = try #require((info["Config"] as? [String: Any])?["Env"] as? [String])
        #expect(!env.contains { $0.contains(cache) }, "no host path in the container's environment: \(env)")
        #expect(env.contains("HF_HOME=/data"), "the image's own HF_HOME stays: \(env)")
        let binds = try #require((info["HostConfig"] as? [String: Any])?["Binds"] as? [String])
        #expect(binds == ["\(cache):/data"])

        // The fake downloads as huggingface_hub does, into $HF_HOME/hub: the host's cache.
        let snapshots = cache + "/hub/models--org--tiny/snapshots"
        let revisions = (try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []
        #expect(revisions.count == 1, "the weights land in the host cache \(snapshots)")
        if let revision = revisions.first {
            #expect(FileManager.default.fileExists(atPath: "\(snapshots)/\(revision)/model.safetensors"))
        }
        #expect(try await harness.run(["down", "tgi5"]).code == 0)
        #expect(try await Self.containers(docker, server: "tgi5").isEmpty)

        // A second start finds the weights: nothing is downloaded again.
        #expect(try await harness.run(["up", profile]).code == 0)
        let logs = try await harness.run(["logs", "tgi5", "--tail", "200"])
        #expect(logs.stdout.contains("Files are already present on the host. Skipping download."), "\(logs.stdout)")
        #expect(try await harness.run(["down", "tgi5"]).code == 0)
        #expect(try await Self.containers(docker, server: "tgi5").isEmpty)
        // The files the container wrote are root's; the harness removes its home as root.
    }

    @Test func aMissingHostCacheIsCreatedAsTheDaemonsUserBeforeTheContainer() async throws {
        _ = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let cache = harness.home.appendingPathComponent("not/yet/hf").path
        // pull: never with no such image: the run fails before any container exists, so
        // only agentron can have created the directory.
        let up = try await harness.run([
            "up",
            try Self.profile(
                harness, name: "tgi6", image: "agentron-test/no-such-image:1", env: ["HF_HOME": cache],
                extra: "pull: never\n"),
        ])
        #expect(up.code == 4)
        var info = stat()
        #expect(stat(cache, &info) == 0, "the cache directory was created")
        #expect(info.st_uid == getuid(), "owned by the daemon's user")
        #expect(info.st_mode & S_IFMT == S_IFDIR)
    }

    /// A root daemon making a cache in a user's directory gives it to that user, who could
    /// otherwise no longer write their own cache.
    @Test(.enabled(if: getuid() == 0)) func aRootDaemonMakesAUsersCacheTheUsers() async throws {
        _ = try await Self.requireDocker()
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let userHome = harness.home.appendingPathComponent("alice").path
        try FileManager.default.createDirectory(atPath: userHome, withIntermediateDirectories: true)
        chown(userHome, 65534, 65534)
        let cache = userHome + "/.cache/huggingface"
        let up = try await harness.run([
            "up",
            try Self.profile(
                harness, name: "tgi7", image: "agentron-test/no-such-image:1", env: ["HF_HOME": cache],
                extra: "pull: never\n"),
        ])
        #expect(up.code == 4)
        for path in [userHome + "/.cache", cache] {
            var info = stat()
            #expect(lstat(path, &info) == 0 && info.st_uid == 65534, "\(path) is the user's")
        }
    }

    @Test func aPullFailureShowsDockersOwnMessage() async throws {
        _ = try await Self.requireDocker()
        let image = "agentron-test/no-such-image:1"
        // What Docker itself says about this pull here (no registry: a lookup error; with
        // one: "pull access denied ... repository does not exist").
        let direct = try await HTTPClient.shared.execute(
            HTTPRequest(
                method: "POST", url: "http://localhost/images/create?fromImage=agentron-test/no-such-image&tag=1",
                unixSocketPath: "/var/run/docker.sock", timeout: .seconds(60)))
        struct Message: Decodable { var message: String }
        let docker = try #require(
            try? JSONDecoder().decode(Message.self, from: Data(direct.body)), "\(direct.bodyText)"
        ).message

        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // The default policy, missing: the absent image is pulled.
        let up = try await harness.run(["up", try Self.profile(harness, name: "tgi7", image: image)])
        #expect(up.code == 4)
        #expect(up.stderr.contains("pulling \(image) failed: \(docker)"), "Docker's words, not only ours: \(up.stderr)")
    }

    /// The create request against a fake Docker API: the host's GPUs decide the device
    /// request and --num-shard (TGI would count one shard from NVIDIA_VISIBLE_DEVICES=all).
    @Test func gpusFollowTheHostAndNumShardFollowsTheGPUs() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let fake = try FakeDockerAPI(socketPath: harness.home.appendingPathComponent("docker.sock").path)
        defer { fake.stop() }
        try await harness.startDaemon(environment: ["DOCKER_HOST": "unix://\(fake.socketPath)"])
        let gpuHost = harness.home.appendingPathComponent("dev-gpu")
        let cpuHost = harness.home.appendingPathComponent("dev-cpu")
        try FileManager.default.createDirectory(at: gpuHost, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: cpuHost, withIntermediateDirectories: true)
        for node in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"] {
            #expect(FileManager.default.createFile(atPath: gpuHost.appendingPathComponent(node).path, contents: nil))
        }

        func create(_ name: String, devices: URL, extra: String = "") async throws -> [String: Any] {
            let before = fake.requests.count
            let up = try await harness.run([
                "up",
                try Self.profile(harness, name: name, env: ["AGENTRON_GPU_DEVICES_DIR": devices.path], extra: extra),
            ])
            #expect(up.code == 4, "the fake refuses the start")
            let body = fake.requests[before...].first { $0.method == "POST" && $0.path.hasPrefix("/containers/create") }
            let data = try #require(body?.body, "no create for \(name): \(up.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }

        let gpu = try await create("tgi-gpu", devices: gpuHost)
        let requests = try #require((gpu["HostConfig"] as? [String: Any])?["DeviceRequests"] as? [[String: Any]])
        #expect(requests.count == 1)
        #expect(requests.first?["Count"] as? Int == -1, "all GPUs")
        #expect(requests.first?["Capabilities"] as? [[String]] == [["gpu"]])
        let command = try #require(gpu["Cmd"] as? [String])
        #expect(command.suffix(2) == ["--num-shard", "2"], "\(command)")
        #expect(!((gpu["Env"] as? [String]) ?? []).contains { $0.hasPrefix("AGENTRON_") })

        let cpu = try await create("tgi-cpu", devices: cpuHost)
        #expect((cpu["HostConfig"] as? [String: Any])?["DeviceRequests"] == nil, "a CPU-only host asks for no GPU")
        #expect(!((cpu["Cmd"] as? [String]) ?? []).contains("--num-shard"))

        let pinned = try await create("tgi-pinned", devices: gpuHost, extra: "args: [--num-shard, \"1\"]\n")
        let pinnedCommand = try #require(pinned["Cmd"] as? [String])
        #expect(
            pinnedCommand.filter { $0 == "--num-shard" }.count == 1, "the profile's --num-shard wins: \(pinnedCommand)")

        let listed = try await create("tgi-listed", devices: cpuHost, extra: "gpus: [1]\n")
        let listedRequests = try #require(
            (listed["HostConfig"] as? [String: Any])?["DeviceRequests"] as? [[String: Any]])
        #expect(listedRequests.first?["DeviceIDs"] as? [String] == ["1"])
        #expect((listed["Cmd"] as? [String] ?? []).suffix(2) == ["--num-shard", "1"])
    }
}
