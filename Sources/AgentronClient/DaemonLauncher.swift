import AgentronConfig
import AgentronCore
import AgentronProcess
import Glibc

/// Starts agentrond in the background when no daemon answers (user mode: the embedded
/// default needs nothing installed first), then waits for its socket to answer.
public struct DaemonLauncher: Sendable {
    public let paths: AgentronPaths

    /// A daemon starts in a few milliseconds; this bounds a broken one.
    public static let startTimeout: Duration = .seconds(15)
    static let pollInterval: Duration = .milliseconds(20)

    public init(paths: AgentronPaths) {
        self.paths = paths
    }

    /// Answers whether a daemon already runs, starting one if not. `progress` is told once
    /// when a daemon is being started.
    ///
    /// Only the user's own daemon is started: a daemon named by `--host`, or the system
    /// daemon, is someone else's to run, and `target` says which one to ask.
    public func ensureRunning(
        target: DaemonTarget? = nil, progress: (String) -> Void
    ) async throws(ClientError) -> DaemonInfo {
        let target = target ?? .own(paths)
        let client = ControlClient(target: target)
        do {
            return try await client.daemonInfo(timeout: .seconds(10))
        } catch {
            guard case .daemonNotRunning = error, target.kind == .own else { throw error }
        }
        if let refusal = target.systemRefusal { progress(refusal) }
        guard let executable = Self.daemonExecutable() else {
            throw .transport(
                "agentrond is not running and its program was not found next to agentron or on PATH; install agentron fully, or start agentrond yourself"
            )
        }
        progress("starting agentrond (\(executable)); log: \(paths.daemonLogPath)")
        do { try FileIO.makeDirectories(paths.stateDirectory, mode: 0o700) } catch {
            throw .transport("cannot start agentrond: \(error)")
        }
        do {
            _ = try Spawner.spawn(
                arguments: [executable], environment: ProcessEnvironment.current, logPath: paths.daemonLogPath)
        } catch {
            throw .transport("cannot start agentrond: \(error)")
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: Self.startTimeout)
        var lastError = ClientError.daemonNotRunning(socket: paths.socketPath)
        while clock.now < deadline {
            do {
                return try await client.daemonInfo(timeout: .seconds(5))
            } catch {
                lastError = error
            }
            try? await Task.sleep(for: Self.pollInterval)
        }
        let tail = LogFiles(directory: paths.stateDirectory, name: "agentrond").tail(lines: 5).joined(separator: "\n  ")
        throw .transport(
            "agentrond did not answer on \(paths.socketPath) within \(Self.startTimeout) (\(lastError)); its log says:\n  \(tail)"
        )
    }

    /// agentrond next to this executable (an installed or built pair), else on PATH.
    static func daemonExecutable() -> String? {
        if let exe = AgentronPaths.currentExecutablePath(), let slash = exe.lastIndex(of: "/") {
            let sibling = String(exe[..<slash]) + "/agentrond"
            if access(sibling, X_OK) == 0 { return sibling }
        }
        return Spawner.resolveExecutable("agentrond", path: ProcessEnvironment.current["PATH"])
    }
}
