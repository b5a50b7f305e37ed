import AgentronConfig
import AgentronCore
import Glibc

/// Which daemon a CLI talks to (docs/architecture.md, "Which daemon"): the socket that
/// `--host` / `AGENTRON_HOST` names; else the user's own daemon when it answers; else the
/// system daemon when its socket lets this user in; else the user's own, which `up`
/// starts. A CLI never starts a private daemon beside a system one it can reach.
public struct DaemonTarget: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// Named by `--host` or `AGENTRON_HOST`: never started by the CLI.
        case host
        /// The user's own daemon (or root's, which is the system one), under `paths`.
        case own
        /// The system daemon, reached by a user through its socket's group.
        case system
    }

    public var kind: Kind
    public var socketPath: String
    /// The directories checked before every call (RuntimeDirectory).
    public var runtimeDirectories: [String]
    /// Set when a system daemon's socket exists but refused this user (not in its group):
    /// the one line to print before a private daemon is started instead.
    public var systemRefusal: String?

    /// The environment variable that names a daemon's socket (`unix:///path` or a path).
    public static let hostVariable = "AGENTRON_HOST"
    /// Where the system daemon listens; `AGENTRON_SYSTEM_SOCKET` moves it (tests, unusual
    /// layouts).
    public static let systemSocketVariable = "AGENTRON_SYSTEM_SOCKET"
    public static let defaultSystemSocket = "/run/agentron/agentron.sock"

    public init(kind: Kind, socketPath: String, runtimeDirectories: [String], systemRefusal: String? = nil) {
        self.kind = kind
        self.socketPath = socketPath
        self.runtimeDirectories = runtimeDirectories
        self.systemRefusal = systemRefusal
    }

    /// The user's own daemon under `paths` (root's own is the system daemon).
    public static func own(_ paths: AgentronPaths) -> DaemonTarget {
        DaemonTarget(kind: .own, socketPath: paths.socketPath, runtimeDirectories: paths.runtimeDirectoriesToOwn)
    }

    /// Why a `--host` value cannot be used.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// The socket path in `unix:///run/agentron/agentron.sock` or a plain path.
    public static func socketPath(fromHost text: String) throws(Invalid) -> String {
        var path = text
        if path.hasPrefix("unix://") { path = String(path.dropFirst("unix://".count)) }
        guard path.hasPrefix("/"), !path.contains("\0") else {
            throw Invalid(
                description:
                    "\(hostVariable)/--host \"\(text)\" is not a Unix socket; give its absolute path or unix:///path (agentrond has no TCP control port)"
            )
        }
        return path
    }

    /// The daemon for this process: `paths` are its own, `environment` may name another.
    public static func choose(paths: AgentronPaths, environment: [String: String]) throws(Invalid) -> DaemonTarget {
        if let host = environment[hostVariable], !host.isEmpty {
            let path = try socketPath(fromHost: host)
            return DaemonTarget(kind: .host, socketPath: path, runtimeDirectories: [FileIO.parentDirectory(of: path)])
        }
        let own = Self.own(paths)
        let system = environment[systemSocketVariable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultSystemSocket
        // AGENTRON_HOME means "this daemon and no other"; root's own daemon is the system one.
        let explicitHome = environment["AGENTRON_HOME"].map { !$0.isEmpty } ?? false
        guard !explicitHome || environment[systemSocketVariable] != nil, own.socketPath != system else { return own }
        if answers(own.socketPath) == 0 { return own }
        switch answers(system) {
        case 0:
            return DaemonTarget(
                kind: .system, socketPath: system, runtimeDirectories: [FileIO.parentDirectory(of: system)])
        case EACCES:
            var fallback = own
            fallback.systemRefusal =
                "a system agentrond listens on \(system), but you may not use it (ask an administrator to add you to its group: sudo usermod -aG agentron \(userName())); using your own daemon instead"
            return fallback
        default:
            return own
        }
    }

    /// 0 when something accepts a connection on `path` now, else the errno of connect(2)
    /// (ENOENT, ECONNREFUSED: nobody; EACCES: not allowed). Nothing is sent.
    static func answers(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return UnixConnection.connect(fd, path)
    }

    static func userName() -> String {
        ProcessEnvironment.current["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "$USER"
    }
}
