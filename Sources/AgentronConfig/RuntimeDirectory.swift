#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The rule for the directory that holds the control socket, shared by the daemon (before it
/// binds) and the CLI (before it connects or starts a daemon).
///
/// Whoever controls that directory controls which socket a client reaches: with write access
/// to it another user can unlink the daemon's socket and bind their own listener in its place,
/// then receive every profile the CLI sends, env secrets included. So the directory must be a
/// real directory (lstat: a symlink could be re-pointed), owned by us (or root, when the CLI
/// talks to the system daemon), and writable by nobody else.
public enum RuntimeDirectory {
    /// Why a directory is refused; `description` is the one line both sides print.
    public struct Refusal: Error, CustomStringConvertible, Sendable, Equatable {
        public var path: String
        /// What was found: "a symlink", "owned by uid 65534 with mode 0700", …
        public var found: String
        /// What it must be instead, to complete "it must be …".
        public var required: String

        public var description: String {
            "refusing the runtime directory \(path): it is \(found), but it must be \(required), "
                + "or another user could replace the control socket; remove it (rm -rf \(path)), "
                + "or point agentron elsewhere with XDG_RUNTIME_DIR or AGENTRON_HOME"
        }
    }

    /// Checks one directory. A missing directory passes: nobody controls it yet, and whoever
    /// creates it (the daemon, with `prepare`) checks again afterwards.
    ///
    /// - Parameter owners: the uids that may own it; the daemon passes only its own uid, the
    ///   CLI also root (the system daemon's /run/agentron is root's, and root can do anything).
    public static func validate(path: String, owners: [uid_t] = [geteuid()]) throws(Refusal) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw Refusal(
                path: path, found: "unreadable (\(String(cString: strerror(errno))))",
                required: "a directory we can inspect")
        }
        let required = requirement(owners: owners)
        let type = info.st_mode & S_IFMT
        guard type == S_IFDIR else {
            throw Refusal(path: path, found: type == S_IFLNK ? "a symlink" : "not a directory", required: required)
        }
        let mode = info.st_mode & 0o7777
        guard owners.contains(info.st_uid), mode & 0o022 == 0 else {
            throw Refusal(
                path: path, found: "owned by \(describeUser(info.st_uid)) with mode \(octal(mode))", required: required)
        }
    }

    /// Creates each directory that is missing with mode 0700 (in order, parents first), then
    /// checks every one of them: the daemon's start. An existing directory is never chmod'ed:
    /// one somebody else prepared is refused, not adopted.
    ///
    /// A root daemon makes the last one 0755 (`mode`): the users of its socket's group must
    /// be able to reach the socket, whose own mode decides who may connect.
    public static func prepare(_ directories: [String], mode: mode_t = 0o700) throws(PrepareError) {
        for (index, directory) in directories.enumerated() {
            do { try FileIO.makeDirectories(directory, mode: index == directories.count - 1 ? mode : 0o700) } catch {
                throw .create(error)
            }
        }
        for directory in directories {
            do { try validate(path: directory, owners: [geteuid()]) } catch {
                throw .refused(error)
            }
        }
    }

    public enum PrepareError: Error, CustomStringConvertible, Sendable {
        case create(FileIO.Failure)
        case refused(Refusal)

        public var description: String {
            switch self {
            case .create(let failure): "\(failure)"
            case .refused(let refusal): refusal.description
            }
        }
    }

    static func requirement(owners: [uid_t]) -> String {
        let names = owners.map { $0 == 0 ? "root" : describeUser($0) }
        return "a directory owned by \(names.joined(separator: " or ")) that no one else can write to (mode 0700)"
    }

    /// "uid 1000 (alice)": the number is what matters, the name helps a person.
    static func describeUser(_ uid: uid_t) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return "uid \(uid)" }
        return "uid \(uid) (\(String(cString: name)))"
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return "0" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }
}
