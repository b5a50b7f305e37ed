import AgentronClient
import AgentronConfig
import AgentronCore
import ArgumentParser
import Glibc

/// `agentron service`: the systemd side of the daemon (docs/systemd.md, issue #6).
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Install, remove and inspect the systemd unit that runs agentrond at boot.",
        discussion: """
            The system unit (root) runs agentrond from boot, with /run/agentron,
            /var/lib/agentron and /etc/agentron. --user installs a user unit that runs it
            in your session; `loginctl enable-linger $USER` starts that one at boot.
            See docs/systemd.md.
            """,
        subcommands: [ServiceInstall.self, ServiceUninstall.self, ServiceStatus.self]
    )
}

/// Where the units of one scope (system or --user) live, and how to drive its manager.
struct ServiceScope {
    let user: Bool
    let environment: [String: String]

    init(user: Bool, environment: [String: String] = ProcessEnvironment.current) {
        self.user = user
        self.environment = environment
    }

    static let serviceName = "agentrond.service"
    static let socketName = "agentrond.socket"

    /// A freshly started daemon answers within milliseconds once `systemctl start` returns
    /// (it returns at READY=1); this covers a slow first start of a socket-activated one.
    static let pingTimeout: Duration = .seconds(10)
    static let pingInterval: Duration = .milliseconds(200)

    var name: String { user ? "user" : "system" }

    var unitDirectory: String {
        if !user { return "/etc/systemd/system" }
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? "/root") + "/.config"
        return config + "/systemd/user"
    }

    var servicePath: String { unitDirectory + "/" + Self.serviceName }
    var socketUnitPath: String { unitDirectory + "/" + Self.socketName }

    /// The control socket the unit's daemon serves: the paths of AgentronPaths for root or
    /// for this user under systemd (which sets XDG_RUNTIME_DIR), not AGENTRON_HOME.
    var controlSocket: String {
        if !user { return "/run/agentron/agentron.sock" }
        let runtime = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/user/\(getuid())"
        return runtime + "/agentron/agentron.sock"
    }

    var systemctl: [String] { user ? ["systemctl", "--user"] : ["systemctl"] }
    var journalctl: String { user ? "journalctl --user -u agentrond" : "journalctl -u agentrond" }

    /// Whether systemd is the init system here (sd_booted(3): /run/systemd/system exists).
    /// Containers and CI machines often run without it; then nothing can be enabled.
    static var systemdIsRunning: Bool {
        var info = stat()
        return lstat("/run/systemd/system", &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Asks the daemon at the unit's socket who it is, retrying until `timeout`.
    func ping(timeout: Duration = ServiceScope.pingTimeout) async -> Result<DaemonInfo, ClientError> {
        let client = ControlClient(socketPath: controlSocket)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var last = ClientError.daemonNotRunning(socket: controlSocket)
        repeat {
            do {
                return .success(try await client.daemonInfo(timeout: .seconds(2)))
            } catch {
                last = error
            }
            try? await Task.sleep(for: Self.pingInterval)
        } while clock.now < deadline
        return .failure(last)
    }

    /// One line about the daemon: who answers, or that nothing does and where to look.
    func describe(_ result: Result<DaemonInfo, ClientError>) -> String {
        switch result {
        case .success(let info):
            "agentrond \(info.version) answers on \(info.socket) (pid \(info.pid))"
        case .failure(.daemonNotRunning):
            "nothing answers on \(controlSocket); see: \(journalctl)"
        case .failure(let error):
            "agentrond on \(controlSocket) does not answer properly (\(error)); see: \(journalctl)"
        }
    }
}

/// Runs a program (systemctl) with its output captured. The CLI stays off Foundation's
/// Process (docs/PERFORMANCE.md), so this is posix_spawnp with a pipe.
enum Subprocess {
    struct Outcome {
        var status: Int32
        var output: String
        var succeeded: Bool { status == 0 }
    }

    static func run(_ arguments: [String]) -> Outcome {
        guard let program = arguments.first else { return Outcome(status: 127, output: "no program given") }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            return Outcome(status: 127, output: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        // Close-on-exec so the child holds only the dup2'd copies (pipe2 is not imported).
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], STDERR_FILENO)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, program, &actions, nil, argv, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard spawned == 0 else {
            return Outcome(status: 127, output: "cannot run \(program): \(String(cString: strerror(spawned)))")
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            output += buffer[0..<count]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // WIFEXITED/WEXITSTATUS are macros Swift cannot import.
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exitCode, output: String(decoding: output, as: UTF8.self))
    }
}

/// Writes `text` to `path` atomically (temp file, fsync, rename; docs/conventions.md rule 8), creating
/// the directory when needed.
func writeFileAtomically(_ text: String, to path: String, mode: mode_t = 0o644) throws(ServiceFileError) {
    do {
        try FileIO.makeDirectories(FileIO.parentDirectory(of: path), mode: 0o755)
        try FileIO.writeAtomically(Array(text.utf8), to: path, mode: mode, owner: nil)
    } catch {
        throw ServiceFileError(path: error.path, action: error.step, errno: error.code)
    }
}

struct ServiceFileError: Error, CustomStringConvertible {
    var path: String
    var action: String
    var errno: Int32

    var description: String {
        let reason = String(cString: strerror(errno))
        let hint = errno == EACCES || errno == EPERM ? "; run it as root (sudo), or use --user" : ""
        return "cannot \(action) \(path): \(reason)\(hint)"
    }
}
