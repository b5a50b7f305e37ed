#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where agentron keeps its socket, state, logs and configuration (docs/architecture.md).
///
/// - `AGENTRON_HOME=<dir>`: everything under `<dir>/run`, `<dir>/state`, `<dir>/config`
///   (tests use it so they never touch the real locations).
/// - root: `/run/agentron`, `/var/lib/agentron`, `/etc/agentron`, like rootful podman.
/// - a user: `$XDG_RUNTIME_DIR/agentron`, `$XDG_STATE_HOME/agentron`, `$XDG_CONFIG_HOME/agentron`.
public struct AgentronPaths: Sendable, Equatable {
    public var runtimeDirectory: String
    public var stateDirectory: String
    public var configDirectory: String
    /// Profile directories searched after the built-in ones; later wins.
    public var profileDirectories: [String]

    public var socketPath: String { runtimeDirectory + "/agentron.sock" }
    /// One daemon per state directory: the second one is refused, nothing is corrupted.
    public var lockPath: String { stateDirectory + "/agentrond.lock" }
    public var logDirectory: String { stateDirectory + "/logs" }
    public var stateFile: String { stateDirectory + "/servers.json" }
    public var daemonLogPath: String { stateDirectory + "/agentrond.log" }
    /// The daemon's random identity (labels on its containers): see DaemonIdentity.
    public var instanceIDPath: String { stateDirectory + "/instance-id" }

    /// Where the system's profiles live: a user daemon reads them but leaves their
    /// `autostart` to the system daemon.
    public static let systemProfileDirectories = ["/etc/agentron/profiles"]

    /// The directories whose owner decides who may replace the control socket, parents first
    /// (RuntimeDirectory). Always the runtime directory; with the /tmp fallback (no
    /// XDG_RUNTIME_DIR: sudo -u, cron, su) also `/tmp/agentron-<uid>`, which anyone could
    /// have created before us in the world-writable /tmp.
    public var runtimeDirectoriesToOwn: [String] {
        let fallback = Self.fallbackRuntimeParent
        return runtimeDirectory == fallback + "/agentron" ? [fallback, runtimeDirectory] : [runtimeDirectory]
    }

    /// Where the runtime directory goes without XDG_RUNTIME_DIR.
    public static var fallbackRuntimeParent: String { "/tmp/agentron-\(getuid())" }

    public init(runtimeDirectory: String, stateDirectory: String, configDirectory: String, profileDirectories: [String])
    {
        self.runtimeDirectory = runtimeDirectory
        self.stateDirectory = stateDirectory
        self.configDirectory = configDirectory
        self.profileDirectories = profileDirectories
    }

    /// The paths for this process, from its environment and user id.
    public static func current(environment: [String: String] = ProcessEnvironment.current) -> AgentronPaths {
        if let home = environment["AGENTRON_HOME"], !home.isEmpty {
            return AgentronPaths(
                runtimeDirectory: home + "/run",
                stateDirectory: home + "/state",
                configDirectory: home + "/config",
                profileDirectories: [home + "/config/profiles"]
            )
        }
        if getuid() == 0 {
            return AgentronPaths(
                runtimeDirectory: "/run/agentron",
                stateDirectory: "/var/lib/agentron",
                configDirectory: "/etc/agentron",
                profileDirectories: ["/etc/agentron/profiles"]
            )
        }
        let userHome = environment["HOME"] ?? "/tmp"
        let runtime = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? fallbackRuntimeParent
        let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? userHome + "/.local/state"
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? userHome + "/.config"
        return AgentronPaths(
            runtimeDirectory: runtime + "/agentron",
            stateDirectory: state + "/agentron",
            configDirectory: config + "/agentron",
            profileDirectories: ["/etc/agentron/profiles", config + "/agentron/profiles"]
        )
    }

    /// Built-in profiles, found relative to the executable: an installed
    /// `<prefix>/share/agentron/profiles`, or the source tree's `profiles/` when run from
    /// `.build/<config>/` (docs/systemd.md).
    public static func builtinProfileDirectory(executablePath: String? = currentExecutablePath()) -> String? {
        guard let exe = executablePath else { return nil }
        let binDir = parentDirectory(of: exe)
        let candidates = [
            parentDirectory(of: binDir) + "/share/agentron/profiles",
            // .build/debug/agentron or .build/x86_64-unknown-linux-gnu/debug/agentron
            parentDirectory(of: parentDirectory(of: binDir)) + "/profiles",
            parentDirectory(of: parentDirectory(of: parentDirectory(of: binDir))) + "/profiles",
        ]
        return candidates.first { isDirectory($0) }
    }

    public static func currentExecutablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func parentDirectory(of path: String) -> String {
        FileIO.parentDirectory(of: path)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}

/// The process environment as a dictionary, read from `environ` (no Foundation needed).
public enum ProcessEnvironment {
    public static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let pair = String(cString: entry)
            if let eq = pair.firstIndex(of: "=") {
                result[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            pointer += 1
        }
        return result
    }
}
