import Foundation
import Testing

@testable import AgentronProcess

/// What the process tests share: a private directory, and a record of every process a test
/// started, stopped by pid (SIGKILL, then reaped when it is ours) when the test ends, even
/// when it fails.
final class ProcessScope: @unchecked Sendable {
    let directory: String
    private let lock = NSLock()
    private var pids: [Int32] = []
    private var groups: [Int32] = []
    private var pidfds: [Int32] = []

    init() throws {
        var template = Array("/tmp/agentron-process-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw ScopeError("mkdtemp failed: errno \(errno)") }
        directory = String(cString: created)
    }

    /// Everything this scope knows of is killed; our children are reaped; the directory goes.
    func stop() {
        let (pids, groups, pidfds) = lock.withLock { (self.pids, self.groups, self.pidfds) }
        for group in groups { kill(-group, SIGKILL) }
        for pid in pids { kill(pid, SIGKILL) }
        for pid in pids { Self.reapIfChild(pid) }
        for fd in pidfds { close(fd) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Remembers `pid` (and, for a session leader, its group) for `stop()`.
    func track(_ pid: Int32, group: Bool = false) {
        guard pid > 0 else { return }
        lock.withLock {
            pids.append(pid)
            if group { groups.append(pid) }
        }
    }

    /// Spawns with `Spawner` and tracks the process, its group and its pidfd.
    func spawn(
        _ arguments: [String], environment: [String: String] = ["PATH": "/usr/bin:/bin"], log: String = "out.log",
        workingDirectory: String? = nil, cgroup: EngineCgroup? = nil
    ) throws(SpawnError) -> EngineProcess {
        let process = try Spawner.spawn(
            arguments: arguments, environment: environment, logPath: path(log), cgroup: cgroup,
            workingDirectory: workingDirectory)
        track(process.pid, group: true)
        lock.withLock { pidfds.append(process.pidfd) }
        return process
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func read(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
    }

    /// The pids a script wrote to `name` (one or more, separated by white space), once the
    /// file holds `count` of them; each is tracked for `stop()`.
    func pids(in name: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws -> [Int32] {
        var found: [Int32] = []
        let ok = await waitUntil(timeout: timeout) {
            found = self.read(name).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            return found.count >= count
        }
        for pid in found { track(pid) }
        guard ok else { throw ScopeError("\(name) holds \(found.count) of \(count) pids after \(timeout)") }
        return found
    }

    static func reapIfChild(_ pid: Int32) {
        guard ProcStat.read(pid: pid)?.ppid == getpid() else { return }
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
    }
}

struct ScopeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; whether it held.
func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while !condition() {
        guard clock.now < deadline else { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return true
}

/// Whether `pid` runs (exists and is not a zombie).
func isRunning(_ pid: Int32) -> Bool {
    guard let stat = ProcStat.read(pid: pid) else { return false }
    return !stat.isZombie
}

/// The descriptors `pid` holds, by number, with what each points to.
func openDescriptors(of pid: Int32) -> [Int32: String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    var result: [Int32: String] = [:]
    for entry in entries {
        guard let fd = Int32(entry) else { continue }
        result[fd] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)")) ?? "?"
    }
    return result
}
