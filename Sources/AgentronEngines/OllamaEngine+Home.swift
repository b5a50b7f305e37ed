import AgentronCore
import FoundationEssentials
import Glibc

// `ollama serve` needs $HOME before it listens: RunServer's first step, initializeKeypair,
// calls Go's os.UserHomeDir() for ~/.ollama/id_ed25519 and returns its error, so without
// HOME it prints "Error: $HOME is not defined" and exits 1 (cmd/cmd.go); envconfig.Models()
// also derives the default model store from it (envconfig/config.go). The system unit runs
// agentrond with no HOME at all, so the Ollama child gets one here.

extension OllamaEngine {
    /// What the host tells us, gathered once per launch so the decision below stays pure.
    struct HostFacts {
        var uid: uid_t
        /// The home directory of `uid` in the password database.
        var homeOfUser: String?

        static func current() -> HostFacts {
            let uid = getuid()
            return HostFacts(uid: uid, homeOfUser: PasswordDatabase.home(uid: uid))
        }
    }

    /// HOME and OLLAMA_MODELS for the child. A HOME or OLLAMA_MODELS already in
    /// `environment` (the profile's env, or the daemon's own) wins.
    /// - HOME, when there is none: the daemon user's home from the password database;
    ///   without an entry, a directory under the state directory.
    /// - OLLAMA_MODELS, for the system daemon (uid 0) only, whether or not it has a HOME (so
    ///   models do not move between a daemon run by systemd and one run by `sudo`):
    ///   `<state dir>/ollama/models`. Never the system Ollama's own store by default: a
    ///   root `ollama serve` writes root-owned files there that its `ollama` user can no
    ///   longer remove, and it prunes blobs it does not know at start (unless
    ///   OLLAMA_NOPRUNE), which could cut short a pull of the system service. Sharing it is
    ///   a profile's choice (docs/engines.md).
    static func applyHomeDefaults(_ environment: inout [String: String], stateDirectory: String, host: HostFacts) {
        let stateStore = stateDirectory.isEmpty ? nil : stateDirectory + "/ollama"
        if environment["HOME"].map({ $0.isEmpty }) ?? true {
            if let home = host.homeOfUser, !home.isEmpty {
                environment["HOME"] = home
            } else if let stateStore {
                environment["HOME"] = stateStore
            }
        }
        guard host.uid == 0, environment["OLLAMA_MODELS"].map({ $0.isEmpty }) ?? true, let stateStore else { return }
        environment["OLLAMA_MODELS"] = stateStore + "/models"
    }
}

/// getpwuid_r without Foundation.
enum PasswordDatabase {
    static func home(uid: uid_t) -> String? {
        lookup { entry, buffer, size, result in getpwuid_r(uid, entry, buffer, size, result) }
    }

    private static func lookup(
        _ call: (
            UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int,
            UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>
        ) -> Int32
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
}
