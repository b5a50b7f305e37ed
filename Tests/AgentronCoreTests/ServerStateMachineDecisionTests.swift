// The lifecycle decisions that used to live in the Supervisor and now belong to the state
// machine (docs/state-machine.md, "Decisions the executor does not make"): each one as a
// test of the pure machine.

import Testing

@testable import AgentronCore

private func profile(restarts: Int = 5, adopt: Bool = false) -> Profile {
    var profile = Profile(
        name: "llama", engine: .command, model: "m",
        startupTimeout: .minutes(30),
        probe: ProbeSettings(interval: .seconds(10), timeout: .seconds(5), failureThreshold: 1),
        restart: RestartPolicy(
            mode: .onFailure, initialDelay: .seconds(1), factor: 2, maxDelay: .seconds(60),
            maxRestarts: restarts, window: .minutes(10), resetAfter: .minutes(5)),
        stopTimeout: .seconds(90))
    if adopt {
        profile.adopt = true
        profile.port = .fixed(11434)
    }
    return profile
}

private func ready(_ profile: Profile) -> ServerStateMachine {
    var machine = ServerStateMachine(profile: profile)
    _ = machine.startRequested(now: 0)
    _ = machine.spawned(now: 0)
    _ = machine.startupProbePassed(now: 1)
    return machine
}

struct ServerStateMachineDecisionTests {
    /// `up` sets wanted, `down` clears it, the daemon's own shutdown keeps it: a server
    /// stopped by a shutdown starts again with the daemon.
    @Test func wantedFollowsTheUserNotTheDaemon() {
        var machine = ready(profile())
        #expect(machine.wanted)
        _ = machine.shutdownRequested()
        _ = machine.exited(.exited(code: 0), now: 2)
        #expect(machine.state == .stopped)
        #expect(machine.wanted)
        #expect(machine.startsAtBoot)

        var stopped = ready(profile())
        _ = stopped.stopRequested()
        _ = stopped.exited(.exited(code: 0), now: 2)
        #expect(!stopped.wanted)
        #expect(!stopped.startsAtBoot)
    }

    /// A new `up` of a stopped server takes the new spec (`applyProfile`, new settings) and
    /// clears the per-run counters, but the lifetime count of restarts stays (it was reset
    /// when the Supervisor replaced the machine).
    @Test func aNewUpAppliesTheSpecAndKeepsTheLifetimeRestartCount() {
        var machine = ready(profile())
        _ = machine.exited(.exited(code: 1), now: 2)
        _ = machine.backoffElapsed(now: 3)
        _ = machine.spawned(now: 3)
        _ = machine.startupProbePassed(now: 4)
        _ = machine.stopRequested()
        _ = machine.exited(.exited(code: 0), now: 5)
        #expect(machine.totalRestarts == 1)

        var changed = profile()
        changed.stopTimeout = .seconds(7)
        #expect(machine.startRequested(profile: changed, now: 6) == [.applyProfile, .spawn])
        #expect(machine.settings.stopGrace == .seconds(7))
        #expect(machine.totalRestarts == 1)
        #expect(machine.restartCount == 0)
        _ = machine.spawned(now: 6)
        #expect(machine.stopRequested() == [.terminate(grace: .seconds(7))])
    }

    /// A running server keeps its own spec: an `up` of it changes nothing.
    @Test func aRunningServerKeepsItsSpec() {
        var machine = ready(profile())
        var changed = profile()
        changed.stopTimeout = .seconds(7)
        #expect(machine.startRequested(profile: changed, now: 2) == [])
        #expect(machine.settings.stopGrace == .seconds(90))
    }

    /// `restart` is one event: stop, then start when the engine is gone, with no window in
    /// which another request could slip in; a `down` meanwhile cancels the start.
    @Test func restartStopsThenStartsInOneEvent() {
        var machine = ready(profile())
        #expect(machine.restartRequested(now: 2) == [.terminate(grace: .seconds(90))])
        #expect(machine.state == .stopping)
        #expect(machine.exited(.signaled(signal: 15), now: 3) == [.spawn])
        #expect(machine.state == .starting)
        #expect(machine.totalRestarts == 0, "a requested restart is not a crash")

        var cancelled = ready(profile())
        _ = cancelled.restartRequested(now: 2)
        _ = cancelled.stopRequested()
        #expect(cancelled.exited(.signaled(signal: 15), now: 3) == [.resolveWaiters(.stopped)])
        #expect(!cancelled.wanted)
    }

    /// A start that cannot be attempted (GPU devices missing at boot) fails a stopped server
    /// and leaves a running one alone; the server stays wanted.
    @Test func aBlockedStartFailsOnlyAServerWithNoEngine() {
        var stopped = ServerStateMachine(profile: profile())
        #expect(stopped.startBlocked(reason: "no GPU", now: 0) == [.resolveWaiters(.failed)])
        #expect(stopped.state == .failed)
        #expect(stopped.reason == "no GPU")
        #expect(stopped.wanted)

        var running = ready(profile())
        #expect(running.startBlocked(reason: "no GPU", now: 2) == [])
        #expect(running.state == .ready)
    }

    /// An attached engine (`adopt: true`) is attached, not spawned, released, not
    /// terminated, and its supervision ends without an exit status being made up.
    @Test func anAttachedEngineIsReleasedNeverSignalled() {
        var machine = ServerStateMachine(profile: profile(adopt: true))
        #expect(machine.startRequested(now: 0) == [.attach])
        #expect(machine.attached)
        _ = machine.spawned(now: 0)
        _ = machine.startupProbePassed(now: 1)
        #expect(machine.stopRequested() == [.release])
        #expect(machine.released(now: 2) == [.resolveWaiters(.stopped)])
        #expect(machine.state == .stopped)
        #expect(machine.lastExit == nil)
    }

    /// A liveness failure of an attached engine restarts by policy: released, then
    /// attached again after the backoff.
    @Test func anAttachedEngineThatStopsAnsweringIsAttachedAgain() {
        var machine = ready(profile(adopt: true))
        #expect(machine.livenessProbe(passed: false, detail: "refused", now: 2) == [.release])
        #expect(machine.released(now: 2) == [.scheduleRestart(after: .seconds(1))])
        #expect(machine.backoffElapsed(now: 3) == [.attach])
    }

    /// The exit watcher's report of an engine we are terminating is not news; an engine that
    /// died by itself is reaped first, and a `down` while it is reaped adds no second kill.
    @Test func onlyTheRightReportOfAnExitCounts() {
        var stopping = ready(profile())
        _ = stopping.stopRequested()
        #expect(stopping.engine == .terminating)
        #expect(stopping.processExited(.signaled(signal: 15), now: 2) == [])
        #expect(stopping.state == .stopping)
        #expect(stopping.exited(.signaled(signal: 15), now: 3) == [.resolveWaiters(.stopped)])

        var crashed = ready(profile())
        #expect(crashed.processExited(.exited(code: 1), now: 2) == [.reapRemnants])
        #expect(crashed.engine == .reaping)
        #expect(crashed.state == .ready, "judged only once the remnants are gone")
        #expect(crashed.stopRequested() == [], "already on its way out")
        #expect(crashed.state == .stopping)
        #expect(crashed.exited(.exited(code: 1), now: 3) == [.resolveWaiters(.stopped)])
        #expect(crashed.totalRestarts == 0)
    }

    /// After a daemon restart the machine says what happens next.
    @Test func restoreDecidesWhatHappensNext() {
        let saved = { (state: ServerState) in
            ServerStateMachine.Saved(state: state, reason: nil, restartCount: 2, totalRestarts: 4, wanted: nil)
        }
        // A live engine: probes resume where it was.
        let (live, liveActions) = ServerStateMachine.restored(
            profile: profile(), saved: saved(.unhealthy), engineAlive: true, now: 0)
        #expect(live.state == .ready)
        #expect(liveActions == [.startLivenessProbes])
        #expect(live.totalRestarts == 4)
        #expect(live.wanted, "a state file without `wanted`: running means wanted")

        let (loading, loadingActions) = ServerStateMachine.restored(
            profile: profile(), saved: saved(.starting), engineAlive: true, now: 0)
        #expect(loading.state == .starting)
        #expect(loadingActions == [.startStartupProbes])

        // A stop it was in the middle of goes on.
        let (stopping, stoppingActions) = ServerStateMachine.restored(
            profile: profile(), saved: saved(.stopping), engineAlive: true, now: 0)
        #expect(stopping.state == .stopping)
        #expect(stoppingActions == [.terminate(grace: .seconds(90))])

        // A dead engine: remnants killed, the loss handled as a crash (restart 3 → 4 s).
        let (dead, deadActions) = ServerStateMachine.restored(
            profile: profile(), saved: saved(.ready), engineAlive: false, now: 0)
        #expect(deadActions == [.killRemnants, .scheduleRestart(after: .seconds(4))])
        #expect(dead.state == .backoff)
        #expect(dead.lastExit == .unknown)

        // Stopped by the daemon's own shutdown: started again with the daemon.
        var cleanly = saved(.stopped)
        cleanly.wanted = true
        let (boot, bootActions) = ServerStateMachine.restored(
            profile: profile(), saved: cleanly, engineAlive: false, now: 0)
        #expect(boot.startsAtBoot)
        #expect(bootActions == [.killRemnants])
    }

    /// `ttl`: counted from the last request's end (or from ready), never while a request
    /// is in flight; the stop is a user's stop that says why, and the server is no longer
    /// wanted, so it does not come back with the daemon.
    @Test func anIdleServerStopsAfterItsTTLAndNeverDuringARequest() {
        var withTTL = profile()
        withTTL.ttl = .seconds(60)
        var machine = ready(withTTL)
        #expect(machine.idleCheck(inFlight: 0, lastActivity: nil, now: 60).isEmpty, "59 s after ready")
        #expect(machine.idleCheck(inFlight: 0, lastActivity: 30, now: 61).isEmpty, "a request ended 31 s ago")
        #expect(machine.idleCheck(inFlight: 1, lastActivity: 0, now: 1000).isEmpty, "a stream in flight")
        #expect(machine.idleCheck(inFlight: 0, lastActivity: 30, now: 90) == [.terminate(grace: .seconds(90))])
        #expect(machine.state == .stopping)
        #expect(!machine.wanted)
        #expect(machine.exited(.exited(code: 0), now: 91) == [.resolveWaiters(.stopped)])
        #expect(machine.state == .stopped)
        #expect(machine.reason == "stopped after 1m without a request (ttl)")
        // A request for it later is a start like `up`.
        #expect(machine.startRequested(now: 100) == [.spawn])
        #expect(machine.wanted)

        var noTTL = ready(profile())
        #expect(noTTL.idleCheck(inFlight: 0, lastActivity: nil, now: 1_000_000).isEmpty, "no ttl: never idle")
    }
}
