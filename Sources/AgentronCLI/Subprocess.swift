import AgentronProcess
import Glibc

/// Runs child programs for the CLI (`doctor`'s `vllm --version` and `nvidia-smi` queries,
/// `service`'s systemctl) with their output captured. The CLI stays off Foundation's Process
/// (docs/PERFORMANCE.md), so this is posix_spawnp with stdin from /dev/null and stdout and
/// stderr into one pipe.
///
/// A command may get a deadline: `vllm --version` imports torch and can take seconds, and a
/// wedged driver can hang nvidia-smi, but `doctor` must answer promptly. Such a command runs
/// in its own process group, killed whole when the deadline passes. Without a deadline the
/// child stays in the CLI's process group, so a Ctrl-C during `systemctl start` reaches both.
enum Subprocess {
    struct Outcome: Sendable {
        /// The exit status, 128 + the signal when a signal ended it (137 when it was killed
        /// at the deadline), 127 when it could not start.
        var status: Int32
        /// stdout and stderr together, at most `maximumOutputBytes`; why it could not start
        /// when it could not.
        var output: String
        var timedOut = false
        /// Why it could not start (not found, not executable).
        var spawnError: String?

        var succeeded: Bool { status == 0 }
    }

    /// Output beyond this is dropped: a version line, a GPU table or systemctl's complaint
    /// is far smaller.
    static let maximumOutputBytes = 64 * 1024

    /// How long one wait for output lasts before exits are checked again: a child may exit
    /// without closing its output (a daemonized helper holds it).
    static let pollInterval: Duration = .milliseconds(50)

    /// Runs one command to its end, or until `timeout` when one is given.
    static func run(_ arguments: [String], timeout: Duration? = nil) -> Outcome {
        runAll([arguments], timeout: timeout)[0]
    }

    /// Runs the commands side by side; every one is done (or killed) when this returns.
    static func runAll(_ commands: [[String]], timeout: Duration? = nil) -> [Outcome] {
        var outcomes = commands.map { _ in Outcome(status: 127, output: "") }
        var running: [(index: Int, pid: pid_t, fd: Int32?, output: [UInt8], exited: Bool)] = []
        for (index, arguments) in commands.enumerated() {
            switch spawn(arguments, ownGroup: timeout != nil) {
            case .success(let (pid, fd)): running.append((index, pid, fd, [], false))
            case .failure(let error):
                outcomes[index].spawnError = error.message
                outcomes[index].output = error.message
            }
        }
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        while running.contains(where: { $0.fd != nil || !$0.exited }) {
            var wait = pollInterval
            if let deadline {
                let remaining = ContinuousClock.now.duration(to: deadline)
                if remaining <= .zero { break }
                wait = min(remaining, wait)
            }
            var pollFDs = running.compactMap { $0.fd.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) } }
            let waitMilliseconds = Int32(wait.milliseconds)
            if pollFDs.isEmpty {
                usleep(UInt32(waitMilliseconds) * 1000)
            } else {
                _ = poll(&pollFDs, nfds_t(pollFDs.count), waitMilliseconds)
            }
            for slot in running.indices {
                if let fd = running[slot].fd {
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while true {
                        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if count > 0 {
                            let room = maximumOutputBytes - running[slot].output.count
                            if room > 0 { running[slot].output += buffer[0..<min(count, room)] }
                            continue
                        }
                        if count == 0 || (errno != EAGAIN && errno != EINTR) {
                            close(fd)
                            running[slot].fd = nil
                        }
                        break
                    }
                }
                if !running[slot].exited {
                    var status: Int32 = 0
                    if waitpid(running[slot].pid, &status, WNOHANG) == running[slot].pid {
                        running[slot].exited = true
                        outcomes[running[slot].index].status = exitCode(status)
                    }
                }
            }
        }
        for slot in running.indices {
            if !running[slot].exited {
                // Past the deadline: the whole group goes (a Python launcher's children too).
                kill(-running[slot].pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(running[slot].pid, &status, 0) < 0, errno == EINTR {}
                outcomes[running[slot].index].status = exitCode(status)
                outcomes[running[slot].index].timedOut = true
            }
            if let fd = running[slot].fd { close(fd) }
            outcomes[running[slot].index].output = String(decoding: running[slot].output, as: UTF8.self)
        }
        return outcomes
    }

    struct SpawnFailure: Error {
        var message: String
    }

    /// posix_spawnp with stdin from /dev/null and stdout+stderr into a non-blocking pipe;
    /// in a process group of its own when `ownGroup`.
    private static func spawn(_ arguments: [String], ownGroup: Bool) -> Result<(pid_t, Int32), SpawnFailure> {
        guard let program = arguments.first else { return .failure(SpawnFailure(message: "no program given")) }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            return .failure(SpawnFailure(message: "cannot create a pipe: \(String(cString: strerror(errno)))"))
        }
        // Close-on-exec so the child holds only the dup2'd copies (pipe2 is not imported).
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(pipeFDs[0], F_SETFL, fcntl(pipeFDs[0], F_GETFL) | O_NONBLOCK)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], STDERR_FILENO)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if ownGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        }

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, program, &actions, &attributes, argv, environ)
        close(pipeFDs[1])
        guard spawned == 0 else {
            close(pipeFDs[0])
            return .failure(SpawnFailure(message: "cannot run \(program): \(String(cString: strerror(spawned)))"))
        }
        return .success((pid, pipeFDs[0]))
    }

    /// WIFEXITED/WEXITSTATUS are macros Swift cannot import.
    private static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// The first executable called `name` on `path` (a PATH value), like `command -v`: the
    /// lookup the daemon's spawns make.
    static func which(_ name: String, path: String?) -> String? {
        Spawner.resolveExecutable(name, path: path)
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
