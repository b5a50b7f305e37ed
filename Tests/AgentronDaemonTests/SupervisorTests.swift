import AgentronCore
import AgentronEngines
import AgentronProcess
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

/// The Supervisor as the executor of the state machine, against fakes (SupervisorFakes.swift):
/// no process is spawned, and time runs 100 times faster, so crash loops, hangs, stops during
/// start and restores take milliseconds. The real-process tests of the same behaviour are in
/// Tests/IntegrationTests (SupervisionTests, LifecycleTests, BootTests).
@Suite(.timeLimit(.minutes(1)))
struct SupervisorTests {
    let directory = NSTemporaryDirectory() + "agentron-supervisor-\(UUID().uuidString.prefix(8))"

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func profile(
        port: Int = 41_000, maxRestarts: Int = 5, failureThreshold: Int = 1, startupTimeout: TimeSpan = .seconds(60),
        adopt: Bool = false
    ) -> Profile {
        var profile = Profile(
            name: "fake", engine: .command, model: "m", port: .fixed(port),
            startupTimeout: startupTimeout,
            probe: ProbeSettings(interval: .seconds(1), timeout: .seconds(1), failureThreshold: failureThreshold),
            restart: RestartPolicy(
                mode: .onFailure, initialDelay: .seconds(1), factor: 2, maxDelay: .seconds(4),
                maxRestarts: maxRestarts, window: .minutes(10), resetAfter: .minutes(5)),
            stopTimeout: .seconds(10))
        profile.command = ["fake"]
        if adopt { profile.adopt = true }
        return profile
    }

    func supervisor(_ profile: Profile, host: FakeEngineHost, driver: FakeDriver = FakeDriver()) -> Supervisor {
        Supervisor(
            profile: profile, driver: driver, logDirectory: directory, daemonEnvironment: [:], cgroups: nil,
            ports: PortTable(range: 31_000...31_100), instance: "test", logger: Logger(label: "test"), host: host,
            onChange: {})
    }

    /// Polls (in real time) until `condition` holds, or fails after `seconds`.
    func until(_ what: String, seconds: Double = 10, _ condition: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !(await condition()) {
            guard Date() < deadline else {
                Issue.record("timed out waiting for: \(what)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    @Test func startsProbesUntilReadyThenStops() async throws {
        let host = FakeEngineHost()
        let driver = FakeDriver(readiness: { $0 < 3 ? .failed("connection refused") : .passed("200") })
        let supervisor = supervisor(profile(), host: host, driver: driver)
        await supervisor.start(profile: profile())
        await supervisor.waitUntilSettled(timeout: .seconds(60))
        #expect(await supervisor.state == .ready)
        #expect(host.spawnCount == 1)
        #expect(host.state.withLock { $0.launches.first?.arguments } == ["fake", "--port", "41000"])

        await supervisor.stop()
        await supervisor.waitUntilDown()
        #expect(await supervisor.state == .stopped)
        #expect(host.terminated == [host.lastPID!])
        #expect(await !supervisor.wanted)
    }

    @Test func aCrashLoopGivesUp() async throws {
        let host = FakeEngineHost()
        let supervisor = supervisor(profile(maxRestarts: 2), host: host)
        await supervisor.start(profile: profile(maxRestarts: 2))
        for round in 1...3 {
            try await until("ready, round \(round)") { await supervisor.state == .ready && host.spawnCount == round }
            host.exit(host.lastPID!, .exited(code: 1))
        }
        try await until("failed") { await supervisor.state == .failed }
        let info = await supervisor.info(detailed: true)
        #expect(info.reason?.contains("restarted 2 times within 10m, giving up") == true, "\(info.reason ?? "")")
        #expect(info.restarts == 2)
        #expect(host.spawnCount == 3)
        #expect(host.terminated.isEmpty, "a crashed engine is reaped, not terminated")
    }

    @Test func aHungEngineIsKilledAndRestarted() async throws {
        let host = FakeEngineHost()
        // Liveness fails once (threshold 1), then passes.
        let driver = FakeDriver(liveness: { $0 == 1 ? .failed("no answer within 1s") : .passed("200") })
        let supervisor = supervisor(profile(), host: host, driver: driver)
        await supervisor.start(profile: profile())
        try await until("restarted and ready") { await supervisor.state == .ready && host.spawnCount == 2 }
        let first = host.state.withLock { $0.spawned[0] }
        #expect(host.terminated == [first])
        #expect(await supervisor.info(detailed: false).restarts == 1)
    }

    @Test func anEngineIgnoringSIGTERMIsKilledAfterTheGrace() async throws {
        let host = FakeEngineHost()
        host.state.withLock { $0.ignoreSIGTERM = true }
        let supervisor = supervisor(profile(), host: host)
        await supervisor.start(profile: profile())
        await supervisor.waitUntilSettled(timeout: .seconds(60))
        await supervisor.stop()
        await supervisor.waitUntilDown()
        let info = await supervisor.info(detailed: true)
        #expect(info.state == .stopped)
        #expect(info.lastExit == .signaled(signal: SIGKILL))
        #expect(info.history?.contains { $0.reason?.contains("SIGKILL to 1 process") == true } == true)
    }

    @Test func aStopDuringStartAbortsItAndNothingStartsAgain() async throws {
        let host = FakeEngineHost()
        let driver = FakeDriver(readiness: { _ in .failed("connection refused") })
        let supervisor = supervisor(profile(), host: host, driver: driver)
        await supervisor.start(profile: profile())
        try await until("spawned") { host.spawnCount == 1 }
        await supervisor.stop()
        await supervisor.waitUntilDown()
        #expect(await supervisor.state == .stopped)
        try await Task.sleep(for: .milliseconds(50))
        #expect(host.spawnCount == 1)
        #expect(await supervisor.state == .stopped)
    }

    @Test func aFirstStartThatDiesFailsWithTheExit() async throws {
        let host = FakeEngineHost()
        let driver = FakeDriver(readiness: { _ in .failed("connection refused") })
        let supervisor = supervisor(profile(), host: host, driver: driver)
        await supervisor.start(profile: profile())
        try await until("spawned") { host.spawnCount == 1 }
        host.exit(host.lastPID!, .exited(code: 3))
        await supervisor.waitUntilSettled(timeout: .seconds(60))
        let info = await supervisor.info(detailed: false)
        #expect(info.state == .failed)
        #expect(info.reason?.hasPrefix("engine exited with status 3 during startup") == true, "\(info.reason ?? "")")
        #expect(host.spawnCount == 1)
    }

    @Test func aMissingProgramFailsTheSpawnWithTheInstallHint() async throws {
        let host = FakeEngineHost()
        host.state.withLock { $0.spawnError = .executableNotFound(name: "fake", searched: "PATH=/bin") }
        let supervisor = supervisor(profile(), host: host)
        await supervisor.start(profile: profile())
        let info = await supervisor.info(detailed: false)
        #expect(info.state == .failed)
        #expect(info.reason?.hasSuffix("it is a fake") == true, "\(info.reason ?? "")")
    }

    @Test func aTakenFixedPortFailsBeforeSpawning() async throws {
        let host = FakeEngineHost()
        host.state.withLock { $0.takenPorts = [41_000] }
        let supervisor = supervisor(profile(), host: host)
        await supervisor.start(profile: profile())
        let info = await supervisor.info(detailed: false)
        #expect(info.state == .failed)
        #expect(info.reason?.contains("port 41000") == true)
        #expect(host.spawnCount == 0)
    }

    @Test func restartKeepsTheLifetimeRestartCount() async throws {
        let host = FakeEngineHost()
        let supervisor = supervisor(profile(), host: host)
        await supervisor.start(profile: profile())
        try await until("ready") { await supervisor.state == .ready }
        host.exit(host.lastPID!, .exited(code: 1))
        try await until("ready after a crash") { await supervisor.state == .ready && host.spawnCount == 2 }
        await supervisor.restart()
        try await until("ready after restart") { await supervisor.state == .ready && host.spawnCount == 3 }
        #expect(await supervisor.info(detailed: false).restarts == 1)
        #expect(host.terminated.count == 1)
    }

    @Test func anAttachedEngineIsNeverSignalled() async throws {
        let host = FakeEngineHost()
        host.state.withLock { $0.takenPorts = [41_000] }  // the engine already answers there
        let supervisor = supervisor(profile(adopt: true), host: host)
        await supervisor.start(profile: profile(adopt: true))
        await supervisor.waitUntilSettled(timeout: .seconds(60))
        #expect(await supervisor.state == .ready)
        await supervisor.stop()
        await supervisor.waitUntilDown()
        #expect(await supervisor.state == .stopped)
        #expect(host.spawnCount == 0)
        #expect(host.terminated.isEmpty)
    }

    @Test func restoreReadoptsALiveEngineAndProbesIt() async throws {
        let host = FakeEngineHost()
        host.state.withLock { $0.adoptable = [4242] }
        let supervisor = supervisor(profile(), host: host)
        let record = StateStore.Record(
            profile: profile(), state: .ready, reason: nil, pid: 4242, processStartTime: 7, startedAt: 1, port: 41_000,
            restartCount: 1, restarts: 3, wanted: true, cgroup: nil, descendants: nil)
        await supervisor.restore(from: record)
        #expect(await supervisor.state == .ready)
        #expect(await supervisor.info(detailed: false).pid == 4242)
        // Still watched: its death is a crash, restarted by policy.
        host.exit(4242, .exited(code: 1))
        try await until("restarted") { await supervisor.state == .ready && host.spawnCount == 1 }
        #expect(await supervisor.info(detailed: false).restarts == 4)
    }

    @Test func restoreOfADeadEngineKillsItsRemnantsAndRestarts() async throws {
        let host = FakeEngineHost()
        let supervisor = supervisor(profile(), host: host)
        let record = StateStore.Record(
            profile: profile(), state: .ready, reason: nil, pid: 4242, processStartTime: 7, startedAt: 1, port: 41_000,
            restartCount: 0, restarts: 0, wanted: true, cgroup: nil,
            descendants: [StateStore.Descendant(pid: 4243, startTime: 8)])
        await supervisor.restore(from: record)
        #expect(host.state.withLock { $0.remnantsKilled } == [[4243: 8]])
        try await until("restarted") { await supervisor.state == .ready && host.spawnCount == 1 }
        #expect(await supervisor.info(detailed: false).restarts == 1)
    }
}

/// Liveness probes of every server with one interval share one grid (issue #14).
struct ProbeGridTests {
    @Test(arguments: [(100.0, 2.0, 102.0), (101.9, 2.0, 104.0), (100.3, 10.0, 110.0), (0.0, 0.5, 0.5)])
    func theNextTickIsOnTheIntervalsGridAndNotAtOnce(now: Double, interval: Double, expected: Double) {
        #expect(Supervisor.nextTick(after: now, interval: interval) == expected)
    }

    @Test func nonsenseNeverTraps() {
        #expect(Supervisor.nextTick(after: 5, interval: 0) == 5)
        #expect(Supervisor.nextTick(after: .infinity, interval: 2) == .infinity)
        #expect(Supervisor.nextTick(after: 1e308, interval: 1e308) >= 1e308)
    }
}
