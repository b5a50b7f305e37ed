import AgentronCore
import CProcessShims
import Glibc

/// An engine process we started (or re-adopted): its pid, the pidfd that watches and
/// signals exactly it, and its start time, which together with the pid identifies it even
/// after the pid is reused.
public struct EngineProcess: Sendable, Equatable {
    public var pid: Int32
    public var pidfd: Int32
    public var startTime: UInt64
    /// The engine leads its own session and process group: pgid == sid == pid.
    public var groupID: Int32 { pid }

    public init(pid: Int32, pidfd: Int32, startTime: UInt64) {
        self.pid = pid
        self.pidfd = pidfd
        self.startTime = startTime
    }

    /// Opens a pidfd for a process found again after a daemon restart, if it is still the
    /// same process (same start time) and not a zombie.
    public static func adopt(pid: Int32, startTime: UInt64) -> EngineProcess? {
        guard let stat = ProcStat.read(pid: pid), stat.startTime == startTime, !stat.isZombie else { return nil }
        let fd = agentron_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        // Check again: the pid could have been reused between the read and the open.
        guard ProcStat.read(pid: pid)?.startTime == startTime else {
            close(fd)
            return nil
        }
        return EngineProcess(pid: pid, pidfd: fd, startTime: startTime)
    }
}

public enum SpawnError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The program is not on PATH (or not executable).
    case executableNotFound(name: String, searched: String)
    case logFile(path: String, errno: Int32)
    case spawnFailed(executable: String, errno: Int32)

    public var description: String {
        switch self {
        case .executableNotFound(let name, let searched):
            "\(name): command not found on PATH (\(searched))"
        case .logFile(let path, let code):
            "cannot open log file \(path): \(String(cString: strerror(code)))"
        case .spawnFailed(let executable, let code):
            "cannot start \(executable): \(String(cString: strerror(code)))"
        }
    }
}

public enum Spawner {
    /// Makes this process a child subreaper (call once, at daemon start).
    public static func becomeSubreaper() -> Bool {
        let done = agentron_set_child_subreaper() == 0
        if done { ExitWatcher.isSubreaper.store(true, ordering: .relaxed) }
        return done
    }

    /// Finds `name` on `path` like a shell does; a name with a slash is taken as is.
    public static func resolveExecutable(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Starts `arguments[0]` (resolved on the environment's PATH) in a new session with
    /// stdout and stderr appended to `logPath`, and the exact `environment` given.
    /// With `cgroup`, the child joins it before exec, so everything it starts is in it.
    public static func spawn(
        arguments: [String], environment: [String: String], logPath: String, cgroup: EngineCgroup? = nil,
        workingDirectory: String? = nil
    ) throws(SpawnError) -> EngineProcess {
        guard let name = arguments.first else { throw .spawnFailed(executable: "", errno: EINVAL) }
        let searched = environment["PATH"] ?? ""
        guard let executable = resolveExecutable(name, path: environment["PATH"]) else {
            throw .executableNotFound(name: name, searched: searched.isEmpty ? "PATH is empty" : "PATH=\(searched)")
        }
        let logFD = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard logFD >= 0 else { throw .logFile(path: logPath, errno: errno) }
        defer { close(logFD) }

        let envStrings = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        // NULL-terminated C string arrays; freed after the spawn returns.
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = envStrings.map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        let cgroupFD = cgroup?.openDirectory() ?? -1
        defer { if cgroupFD >= 0 { close(cgroupFD) } }
        pid = try ChildClaims.spawn { () throws(SpawnError) -> pid_t in
            var child: pid_t = 0
            let result = agentron_spawn(executable, argv, envp, logFD, cgroupFD, workingDirectory, &child)
            guard result == 0 else { throw .spawnFailed(executable: executable, errno: result) }
            return child
        }
        let pidfd = agentron_pidfd_open(pid)
        // The child is ours and unreaped, so its pid cannot be reused before this open.
        let startTime = ProcStat.read(pid: pid)?.startTime ?? 0
        return EngineProcess(pid: pid, pidfd: pidfd, startTime: startTime)
    }
}
