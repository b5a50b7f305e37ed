import AgentronHTTP
import Foundation
import Testing

/// Fault injection through the FakeEngine's knobs (issue #3). Each case names the fault,
/// what agentron must do, and checks that nothing was lost. docs/RELIABILITY.md lists the
/// same cases.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SupervisionTests {
    /// A profile file with fast probes and a quick restart policy, so faults play out in
    /// seconds. Returns its path.
    static func profile(
        _ harness: Harness, name: String, env: [String: String] = [:], restart: String = "on-failure",
        initialDelay: String = "0s", maxRestarts: Int = 5, window: String = "10m", stopTimeout: String = "5s",
        probeInterval: String = "200ms", probeTimeout: String = "200ms", threshold: Int = 3
    ) throws -> String {
        var yaml = """
            name: \(name)
            engine: vllm
            model: org/\(name)
            stop_timeout: \(stopTimeout)
            probe:
              interval: \(probeInterval)
              timeout: \(probeTimeout)
              failure_threshold: \(threshold)
            restart:
              policy: \(restart)
              initial_delay: \(initialDelay)
              max_delay: 10s
              max_restarts: \(maxRestarts)
              window: \(window)

            """
        if !env.isEmpty {
            yaml += "env:\n" + env.sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"\n" }.joined()
        }
        let path = harness.home.appendingPathComponent("\(name).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Polls `ps --json --all` until `predicate` holds for the server, or fails after `seconds`.
    static func waitFor(
        _ harness: Harness, _ name: String, within seconds: Double = 20, _ what: String,
        _ predicate: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            if let server = try await harness.servers(all: true).first(where: { $0["name"] as? String == name }) {
                last = server
                if predicate(server) { return server }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("\(name) never reached: \(what); last seen: \(last)")
    }

    @Test func aCrashAfterReadyIsRestartedAndTheOldTreeIsGone() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let pidFile = harness.pidFile("crashy")
        let path = try Self.profile(
            harness, name: "crashy",
            env: ["FAKE_CRASH_AFTER": "0.5", "FAKE_PID_FILE": pidFile.path, "FAKE_ESCAPE_HELPER": "1"])
        #expect(try await harness.run(["up", path]).code == 0)
        let first = try await harness.readPids("crashy")
        try FileManager.default.removeItem(at: pidFile)
        // The engine crashes 0.5 s after listening; with zero backoff it is back at once.
        let server = try await Self.waitFor(harness, "crashy", "restarted and ready") {
            ($0["restarts"] as? Int ?? 0) >= 1 && $0["state"] as? String == "ready"
        }
        #expect((server["pid"] as? Int).map(Int32.init) != first.first)
        #expect(first.filter(Harness.isAlive).isEmpty, "the crashed engine's EngineCore and helper were cleaned up")
        _ = try await harness.readPids("crashy")
        #expect(try await harness.run(["down", "crashy"]).code == 0)
    }

    @Test func aCrashLoopGivesUpAsFailedWithTheReason() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let path = try Self.profile(
            harness, name: "loop", env: ["FAKE_CRASH_AFTER": "0.3"], maxRestarts: 2, window: "1m")
        _ = try await harness.run(["up", path])
        let server = try await Self.waitFor(harness, "loop", "failed") { $0["state"] as? String == "failed" }
        let reason = server["reason"] as? String ?? ""
        #expect(reason.contains("giving up"), "\(reason)")
        #expect(reason.contains("restarted 2 times"))
        #expect(server["restarts"] as? Int == 2)
        // Stays failed, visible, until `restart` or `down`.
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await harness.servers().first?["state"] as? String == "failed")
        #expect(try await harness.run(["down", "loop"]).code == 0)
    }

    @Test func restartBacksOffExponentially() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // Crashes 0.3 s after listening (late enough for the first start to be seen ready:
        // an exit during the first start fails at once); 300 ms, then 600 ms of backoff.
        let path = try Self.profile(
            harness, name: "backoff", env: ["FAKE_CRASH_AFTER": "0.3"], initialDelay: "300ms", maxRestarts: 10)
        _ = try await harness.run(["up", path, "--detach"])
        _ = try await Self.waitFor(harness, "backoff", "third restart") { ($0["restarts"] as? Int ?? 0) >= 3 }
        let inspect = try harness.json(try await harness.run(["inspect", "backoff", "--json"]).stdout)
        let history = inspect["history"] as? [[String: Any]] ?? []
        // Time spent in backoff before each new start.
        var gaps: [Double] = []
        var backoffAt: Double?
        for change in history {
            let at = change["at"] as? Double ?? 0
            switch change["state"] as? String {
            case "backoff": backoffAt = at
            case "starting":
                if let since = backoffAt {
                    gaps.append(at - since)
                    backoffAt = nil
                }
            default: break
            }
        }
        #expect(gaps.count >= 2, "\(history)")
        if gaps.count >= 2 {
            #expect(gaps[0] >= 0.28 && gaps[0] < 1.5, "first delay \(gaps[0])")
            #expect(gaps[1] >= 0.58 && gaps[1] < 2.5, "second delay \(gaps[1])")
        }
        #expect(try await harness.run(["down", "backoff"]).code == 0)
    }

    @Test func aHungEngineBecomesUnhealthyThenIsRestarted() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let path = try Self.profile(
            harness, name: "hung", env: ["FAKE_HANG_AFTER": "0.3", "FAKE_PID_FILE": harness.pidFile("hung").path],
            stopTimeout: "1s", probeInterval: "300ms", probeTimeout: "200ms", threshold: 6)
        #expect(try await harness.run(["up", path]).code == 0)
        let first = try await harness.readPids("hung")
        let unhealthy = try await Self.waitFor(harness, "hung", "unhealthy") { $0["state"] as? String == "unhealthy" }
        #expect((unhealthy["reason"] as? String)?.contains("health check failed") == true)
        #expect(try await harness.run(["ps"]).stdout.contains("unhealthy"), "shown in ps")
        let restarted = try await Self.waitFor(harness, "hung", "restarted") { ($0["restarts"] as? Int ?? 0) >= 1 }
        #expect((restarted["pid"] as? Int).map(Int32.init) != first.first)
        #expect(first.filter(Harness.isAlive).isEmpty, "the hung engine's whole tree is gone")
        #expect(try await harness.run(["down", "hung"]).code == 0)
    }

    @Test func aStopDuringStartAbortsTheStartAndKillsTheHalfStartedEngine() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "org/slow", "--engine", "vllm", "--detach", "--env", "FAKE_LOAD_SECONDS=60",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("slow").path)",
        ])
        #expect(up.code == 0)
        let pids = try await harness.readPids("slow")
        #expect(try await harness.servers().first?["state"] as? String == "starting")
        let started = ContinuousClock.now
        #expect(try await harness.run(["down", "slow"]).code == 0)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(pids.filter(Harness.isAlive).isEmpty)
        #expect(try await harness.servers(all: true).first?["state"] as? String == "stopped")
    }

    @Test func anEngineThatCannotBindItsPortFailsSayingSoInsteadOfRetrying() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // The port is free when agentron checks; the engine then reports it taken (a race
        // with another program), as vLLM does.
        let path = try Self.profile(
            harness, name: "portrace", env: ["FAKE_EXIT_AT_START": "OSError: [Errno 98] Address already in use"])
        let up = try await harness.run(["up", path])
        #expect(up.code == 4)
        #expect(up.stderr.contains("is already in use"), "\(up.stderr)")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "failed")
        #expect(server["restarts"] as? Int == 0, "not retried")
    }

    @Test func policyNeverLeavesACrashedServerFailed() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let path = try Self.profile(
            harness, name: "never", env: ["FAKE_CRASH_AFTER": "0.3", "FAKE_CRASH_CODE": "3"], restart: "never")
        #expect(try await harness.run(["up", path]).code == 0)
        let server = try await Self.waitFor(harness, "never", "failed") { $0["state"] as? String == "failed" }
        #expect((server["reason"] as? String)?.contains("exited with status 3") == true)
        #expect(server["restarts"] as? Int == 0)
        // `agentron restart` clears it (the engine crashes again later, but it starts).
        let restart = try await harness.run(["restart", "never"])
        #expect(restart.code == 0, "\(restart.stderr)")
        #expect(restart.stdout.contains("never: ready"))
        #expect(try await harness.run(["down", "never"]).code == 0)
    }

    @Test func liveRestoreAfterKill9ReadoptsRunningEnginesAndRestartsDeadOnes() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon()
        #expect(
            try await harness.run([
                "up", "org/keep", "--engine", "vllm", "--name", "keep", "--env",
                "FAKE_PID_FILE=\(harness.pidFile("keep").path)",
            ]).code == 0)
        #expect(
            try await harness.run([
                "up", "org/dies", "--engine", "vllm", "--name", "dies", "--env",
                "FAKE_PID_FILE=\(harness.pidFile("dies").path)",
            ]).code == 0)
        let keep = try await harness.readPids("keep")
        let dies = try await harness.readPids("dies")
        let endpoint = try #require(
            try await harness.servers().first { $0["name"] as? String == "keep" }?["endpoint"] as? String)

        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        // During the outage the engines keep serving: every request succeeds.
        var served = 0
        for _ in 0..<20 {
            let response = try await HTTPClient.shared.execute(
                HTTPRequest(url: endpoint + "/v1/models", timeout: .seconds(2)))
            if response.status == 200 { served += 1 }
        }
        #expect(served == 20)
        // One engine dies while no daemon watches it.
        kill(dies[0], SIGKILL)
        try FileManager.default.removeItem(at: harness.pidFile("dies"))

        try await harness.startDaemon()
        let kept = try await Self.waitFor(harness, "keep", "re-adopted") { $0["state"] as? String == "ready" }
        #expect((kept["pid"] as? Int).map(Int32.init) == keep[0], "same pid: not restarted")
        #expect(kept["restarts"] as? Int == 0)
        let restarted = try await Self.waitFor(harness, "dies", "restarted by policy") {
            $0["state"] as? String == "ready" && ($0["restarts"] as? Int ?? 0) == 1
        }
        #expect((restarted["pid"] as? Int).map(Int32.init) != dies[0])
        #expect(dies.dropFirst().filter(Harness.isAlive).isEmpty, "the dead engine's EngineCore was cleaned up")
        _ = try await harness.readPids("dies")
        // The re-adopted engine is supervised again: down stops it and its tree.
        #expect(try await harness.run(["down", "keep", "dies"]).code == 0)
        #expect(keep.filter(Harness.isAlive).isEmpty)
    }

    @Test func liveRestoreModeLeavesEnginesRunningOnSIGTERM() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let daemon = try await harness.startDaemon(environment: ["AGENTRON_LIVE_RESTORE": "1"])
        #expect(
            try await harness.run([
                "up", "org/stay", "--engine", "vllm", "--name", "stay", "--env",
                "FAKE_PID_FILE=\(harness.pidFile("stay").path)",
            ]).code == 0)
        let pids = try await harness.readPids("stay")
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        #expect(pids.allSatisfy(Harness.isAlive), "engines left running for the next daemon")
        try await harness.startDaemon()
        let server = try await Self.waitFor(harness, "stay", "re-adopted") { $0["state"] as? String == "ready" }
        #expect((server["pid"] as? Int).map(Int32.init) == pids[0])
        #expect(try await harness.run(["down", "stay"]).code == 0)
        #expect(pids.filter(Harness.isAlive).isEmpty)
    }

    /// Both ways of finding an engine's whole tree: a cgroup (root here has a writable
    /// cgroup v2 hierarchy) and sessions plus subreaper bookkeeping.
    @Test(arguments: ["cgroup", "session"])
    func theEscapedHelperIsKilledEitherWay(mode: String) async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon(environment: mode == "session" ? ["AGENTRON_CGROUPS": "off"] : [:])
        let up = try await harness.run([
            "up", "org/tree", "--engine", "vllm", "--name", "tree", "--env", "FAKE_ESCAPE_HELPER=1",
            "--env", "FAKE_PID_FILE=\(harness.pidFile("tree").path)",
        ])
        #expect(up.code == 0)
        let pids = try await harness.readPids("tree")
        #expect(pids.count == 3)
        let cgroup = (try? String(contentsOfFile: "/proc/\(pids[0])/cgroup", encoding: .utf8)) ?? ""
        if mode == "cgroup" {
            try #require(getuid() == 0, "the cgroup path needs root (or a delegated subtree)")
            #expect(cgroup.contains("/agentron-engines/tree-"), "engine placed in its own cgroup: \(cgroup)")
            let helperCgroup = (try? String(contentsOfFile: "/proc/\(pids[2])/cgroup", encoding: .utf8)) ?? ""
            #expect(helperCgroup == cgroup, "the helper that left the session is still in the engine's cgroup")
        } else {
            #expect(!cgroup.contains("agentron-engines"))
        }
        #expect(try await harness.run(["down", "tree"]).code == 0)
        #expect(pids.filter(Harness.isAlive).isEmpty, "\(mode): nothing of the tree left")
        if mode == "cgroup" {
            let path = cgroup.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? ""
            let mount =
                (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8))?
                .split(separator: "\n").first { $0.contains(" - cgroup2 ") }?.split(separator: " ")[4] ?? ""
            #expect(!FileManager.default.fileExists(atPath: "\(mount)\(path)"), "the engine's cgroup was removed")
        }
    }
}
