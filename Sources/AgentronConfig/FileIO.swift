import Glibc

/// Small, careful file operations shared by the daemon and the CLI: whole-file reads, atomic
/// replacement (temp file, fsync, rename, directory fsync: docs/conventions.md rule 8), mkdir -p.
public enum FileIO {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var step: String
        public var code: Int32
        /// Why, when strerror's text would mislead (a FIFO is not "invalid argument").
        public var reason: String?
        public init(path: String, step: String, code: Int32, reason: String? = nil) {
            self.path = path
            self.step = step
            self.code = code
            self.reason = reason
        }
        public var description: String { "cannot \(step) \(path): \(reason ?? String(cString: strerror(code)))" }
    }

    /// A file's bytes and what it was when read.
    public struct Contents {
        public var bytes: [UInt8]
        public var info: stat
    }

    /// What `read` takes at most by default: far more than any config file, far less than
    /// what would hurt the daemon.
    public static let defaultReadLimit = 16 << 20

    /// What kind of file `mode` says, in words for an error message.
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// Reads the whole file; nil when it does not exist. Only a regular file of at most
    /// `limit` bytes is read: a FIFO would block the open or the read forever, and a device
    /// like /dev/zero (or a /proc file that says size 0) would never end.
    public static func read(_ path: String, limit: Int = defaultReadLimit) throws(Failure) -> Contents? {
        // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for
        // one; for a regular file the flag changes nothing.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Failure(path: path, step: "read", code: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(path: path, step: "stat", code: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw Failure(
                path: path, step: "read", code: EINVAL,
                reason:
                    "it is \(kind(info.st_mode)), not a regular file; left untouched: replace it with a regular file")
        }
        let tooBig = Failure(
            path: path, step: "read", code: EFBIG,
            reason: "it is larger than \(limit) bytes; left untouched: is this the right file?")
        guard info.st_size <= limit else { throw tooBig }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        // At most limit + 1 bytes, whatever the size said: one byte past the limit is enough
        // to know the file is too big.
        while bytes.count <= limit {
            let want = min(buffer.count, limit + 1 - bytes.count)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, step: "read", code: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        guard bytes.count <= limit else { throw tooBig }
        return Contents(bytes: bytes, info: info)
    }

    /// The file the path names, through symlinks: a dotfile manager's link stays a link and
    /// its target is what gets replaced.
    public static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path` and
    /// fsyncs the directory (docs/conventions.md rule 8). The new file gets `mode`, and `owner` when given
    /// and different from what the new file already has (root keeps an app's file owned by
    /// the app). `suffix` names the temp file; tests pass a fixed one.
    public static func writeAtomically(
        _ bytes: [UInt8], to path: String, mode: mode_t, owner: (uid: uid_t, gid: gid_t)?,
        suffix: () -> String = unpredictableSuffix
    ) throws(Failure) {
        let directory = parentDirectory(of: path)
        let name = path.split(separator: "/").last.map(String.init) ?? path
        // Hidden, so apps that list the directory skip it; an unpredictable name created
        // with O_EXCL|O_NOFOLLOW, so nothing planted under the name (a symlink, or a hard
        // link to someone else's file) is ever opened: a taken name means another name.
        var temp = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            temp = directory + "/." + name + ".agentron-" + suffix() + ".tmp"
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw Failure(path: temp, step: "create", code: errno) }
        func abandon(_ step: String, _ code: Int32, _ at: String = temp) -> Failure {
            close(fd)
            unlink(temp)
            return Failure(path: at, step: step, code: code)
        }
        // fchmod, not open's mode: the umask must not narrow or widen what the file had.
        guard fchmod(fd, mode) == 0 else { throw abandon("set the mode of", errno) }
        if let owner {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw abandon("stat", errno) }
            // Already theirs (written as the owner, or by the owner itself): a chown would
            // change nothing and, as a non-root filesystem identity, could only fail.
            if info.st_uid != owner.uid || info.st_gid != owner.gid, fchown(fd, owner.uid, owner.gid) != 0 {
                throw abandon("set the owner of", errno)
            }
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.write(fd, $0.baseAddress.map { $0 + written }, bytes.count - written)
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw abandon("write", errno) }
            written += n
        }
        guard fsync(fd) == 0 else { throw abandon("fsync", errno) }
        close(fd)
        guard rename(temp, path) == 0 else {
            let code = errno
            unlink(temp)
            throw Failure(path: path, step: "replace", code: code)
        }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }

    /// `<pid>-<16 random hex digits>`: unique per writer and not guessable in advance.
    public static func unpredictableSuffix() -> String {
        // SystemRandomNumberGenerator reads getrandom(2).
        let random = String(UInt64.random(in: .min ... .max), radix: 16)
        return "\(getpid())-" + String(repeating: "0", count: 16 - random.count) + random
    }

    /// mkdir -p; directories it creates get `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0, errno != EEXIST {
                let code = errno
                // A directory that exists is fine whatever mkdir said about it (EACCES in a
                // parent the caller may search but not write).
                var info = stat()
                if stat(current, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { continue }
                throw Failure(path: current, step: "create the directory", code: code)
            }
        }
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
