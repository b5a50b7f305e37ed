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

    /// The user's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`).
    var userConfigDirectory: String {
        environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? "/root") + "/.config"
    }

    var unitDirectory: String {
        user ? userConfigDirectory + "/systemd/user" : "/etc/systemd/system"
    }

    /// The daemon's environment file, read by the unit's `EnvironmentFile=`.
    var environmentFilePath: String {
        user ? userConfigDirectory + "/agentron/agentrond.env" : "/etc/agentron/agentrond.env"
    }

    /// The group whose members may use the system daemon's socket.
    static let socketGroup = "agentron"

    var servicePath: String { unitDirectory + "/" + Self.serviceName }

    /// The links `systemctl enable` makes from the units' `WantedBy=` targets, which
    /// `service install` makes itself where systemd is not running (an image build, a
    /// chroot), so the machine starts agentrond at its first boot.
    func wantsLinks(socket: Bool) -> [(link: String, target: String)] {
        let serviceTarget = user ? "default.target" : "multi-user.target"
        var links = [(unitDirectory + "/\(serviceTarget).wants/" + Self.serviceName, servicePath)]
        if socket { links.append((unitDirectory + "/sockets.target.wants/" + Self.socketName, socketUnitPath)) }
        return links
    }

    /// Every wants link that may exist, for uninstall.
    var allWantsLinks: [String] { wantsLinks(socket: true).map(\.link) }
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
