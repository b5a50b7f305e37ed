import AgentronCore
import FoundationEssentials
import Glibc

// `ollama serve` needs $HOME before it listens: RunServer's first step, initializeKeypair,
// calls Go's os.UserHomeDir() for ~/.ollama/id_ed25519 and returns its error, so without
// HOME it prints "Error: $HOME is not defined" and exits 1 (cmd/cmd.go); envconfig.Models()
// also derives the default model store from it (envconfig/config.go). The system unit runs
// agentrond with no HOME at all, so the Ollama child gets one here.

extension OllamaEngine {
    /// Where the Linux installer (install.sh) puts the `ollama` service user's home, and
    /// with it the model store of the system's own Ollama.
    static let installerHome = "/usr/share/ollama"

    /// What the host tells us, gathered once per launch so the decision below stays pure.
    struct HostFacts {
        var uid: uid_t
        /// The home directory of `uid` in the password database.
        var homeOfUser: String?
        /// The home directory of the `ollama` user (the installer's service user).
        var ollamaUserHome: String?
        var isReadableDirectory: (String) -> Bool

        static func current() -> HostFacts {
            let uid = getuid()
            return HostFacts(
                uid: uid, homeOfUser: PasswordDatabase.home(uid: uid), ollamaUserHome: PasswordDatabase.home(user: "ollama"),
                isReadableDirectory: PasswordDatabase.isReadableDirectory)
        }
    }

    /// HOME and OLLAMA_MODELS for the child when the daemon has no HOME. A HOME or
    /// OLLAMA_MODELS already in `environment` (the profile's env, or the daemon's own) wins.
    /// - HOME: the daemon user's home from the password database; without an entry, a
    ///   directory under the state directory.
    /// - OLLAMA_MODELS, for the system daemon (uid 0) only: the system Ollama's store when it
    ///   exists and is readable (models pulled with `ollama pull` are served without a second
    ///   download), else `<state dir>/ollama/models`, which stays put across restarts and
    ///   upgrades instead of landing in /root.
    static func applyHomeDefaults(_ environment: inout [String: String], stateDirectory: String, host: HostFacts) {
        guard environment["HOME"].map({ $0.isEmpty }) ?? true else { return }
        let stateStore = stateDirectory.isEmpty ? nil : stateDirectory + "/ollama"
        if let home = host.homeOfUser, !home.isEmpty {
            environment["HOME"] = home
        } else if let stateStore {
            environment["HOME"] = stateStore
        }
        guard host.uid == 0, environment["OLLAMA_MODELS"].map({ $0.isEmpty }) ?? true else { return }
        let systemStore = (host.ollamaUserHome.flatMap { $0.isEmpty ? nil : $0 } ?? installerHome) + "/.ollama/models"
        if host.isReadableDirectory(systemStore) {
            environment["OLLAMA_MODELS"] = systemStore
        } else if let stateStore {
            environment["OLLAMA_MODELS"] = stateStore + "/models"
        }
    }
}

/// getpwuid_r/getpwnam_r without Foundation.
enum PasswordDatabase {
    static func home(uid: uid_t) -> String? {
        lookup { entry, buffer, size, result in getpwuid_r(uid, entry, buffer, size, result) }
    }

    static func home(user: String) -> String? {
        lookup { entry, buffer, size, result in getpwnam_r(user, entry, buffer, size, result) }
    }

    private static func lookup(
        _ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32
    ) -> String? {
        // ERANGE means the buffer was too small for this entry: grow it a few times.
        var size = 1024
        while size <= 1 << 20 {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: size)
            // pw_dir points into the buffer: read it while the buffer is pinned.
            let (status, home) = buffer.withUnsafeMutableBufferPointer { pointer -> (Int32, String?) in
                guard let base = pointer.baseAddress else { return (EINVAL, nil) }
                let status = call(&entry, base, size, &result)
                guard status == 0, result != nil, let directory = entry.pw_dir else { return (status, nil) }
                return (status, String(cString: directory))
            }
            if status == ERANGE {
                size *= 4
                continue
            }
            return home
        }
        return nil
    }

    /// A directory this process can list and read from.
    static func isReadableDirectory(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return false }
        return access(path, R_OK | X_OK) == 0
    }
}
