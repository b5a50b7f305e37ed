import AgentronClient
import AgentronConfig
import AgentronCore
import ArgumentParser

// `agentron up a b c`: several servers at once (issue #13, "CLI conventions"). Every
// target is resolved before anything starts, so a typo starts nothing; then the starts
// and the waits run in parallel and each server is reported as it settles.
extension ServerUp {
    /// The daemon this CLI talks to, started first when it is the user's own and none runs.
    static func ensureDaemon(_ context: CLIContext) async throws {
        do {
            _ = try await DaemonLauncher(paths: context.paths).ensureRunning(target: context.target) {
                Output.note($0)
            }
        } catch {
            throw fail(error)
        }
    }

    func validateTargets() throws {
        guard !targets.isEmpty else {
            throw ValidationError("name what to start: a profile, a profile file, or a model id with --engine")
        }
        guard targets.count > 1 else { return }
        if name != nil {
            throw ValidationError("--name names one server; give one target, or set each name in its profile")
        }
        if case .fixed = port {
            throw ValidationError(
                "--port \(port.map { "\($0)" } ?? "") would be the same for every target; give one target, or use --port auto"
            )
        }
        if adopt { throw ValidationError("--adopt takes one server on its port; give one target") }
        if Set(targets).count != targets.count { throw ValidationError("a target is named twice") }
    }

    func runMany(_ context: CLIContext) async throws {
        var profiles: [Profile] = []
        for target in targets {
            do { profiles.append(try resolveProfile(context, target: target)) } catch let error as ProfileError {
                throw fail("\(target): \(error)")
            }
        }
        let names = profiles.map(\.name)
        guard Set(names).count == names.count else {
            throw fail(
                "two targets make the same server name (\(names.joined(separator: ", "))); start them one by one with --name",
                code: ExitStatus.usage)
        }
        try await Self.ensureDaemon(context)
        let client = context.client
        let detach = self.detach
        let json = self.json
        if !json { Output.note("starting \(names.joined(separator: ", ")) in parallel") }
        let clock = ContinuousClock()
        let started = clock.now
        // Children return plain values (the error as its message and exit status): a
        // typed-throws Result crossing a task group crashed release builds (see ServerDown).
        var outcomes = [StartOutcome?](repeating: nil, count: profiles.count)
        await withTaskGroup(of: (Int, StartOutcome).self) { group in
            for (index, profile) in profiles.enumerated() {
                group.addTask {
                    do {
                        var info = try await client.start(profile)
                        while !detach && !info.state.isSettled {
                            info = try await client.wait(profile.name, seconds: 5)
                        }
                        return (index, StartOutcome(name: profile.name, info: info, error: nil, status: 0))
                    } catch {
                        return (
                            index,
                            StartOutcome(
                                name: profile.name, info: nil, error: "\(error)", status: ExitStatus.of(error))
                        )
                    }
                }
            }
            for await (index, outcome) in group {
                outcomes[index] = outcome
                if !json { Self.report(outcome, elapsed: started.duration(to: clock.now)) }
            }
        }
        let results = outcomes.compactMap { $0 }
        if json { Output.json(results.compactMap(\.info)) }
        var status = ExitStatus.success
        for result in results {
            if let info = result.info {
                if !detach && info.state != .ready { status = max(status, ExitStatus.startFailed) }
            } else {
                status = max(status, result.status)
            }
        }
        if status != ExitStatus.success { throw ExitCode(status) }
    }

    struct StartOutcome: Sendable {
        var name: String
        var info: ServerInfo?
        var error: String?
        var status: Int32
    }

    /// One line per server as it settles: ready with its endpoint, or why not.
    static func report(_ outcome: StartOutcome, elapsed: Duration) {
        guard let info = outcome.info else {
            Output.error("\(outcome.name): \(outcome.error ?? "cannot start")")
            return
        }
        switch info.state {
        case .ready:
            print(
                "\(info.name) is ready (\(info.engine.rawValue), \(Format.elapsed(elapsed))): \(info.endpoint ?? "?")/v1, model \(info.servedModel)"
            )
        case .failed, .stopped:
            Output.error(
                "server \"\(info.name)\" \(info.state == .failed ? "failed to start" : "stopped before it was ready")"
                    + (info.reason.map { ": \($0)" } ?? "") + "; see: agentron logs \(info.name)")
        default:
            print("\(info.name): \(info.state.rawValue) (accepted)")
        }
    }
}
