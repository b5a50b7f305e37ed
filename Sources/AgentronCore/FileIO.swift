import Glibc

/// Small, careful file operations shared by the daemon and the CLI: whole-file reads, atomic
/// replacement (temp file, fsync, rename, directory fsync: STYLE rule 8), mkdir -p.
public enum FileIO {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var step: String
        public var code: Int32
        public init(path: String, step: String, code: Int32) {
            self.path = path
            self.step = step
            self.code = code
        }
        public var description: String { "cannot \(step) \(path): \(String(cString: strerror(code)))" }
    }

    /// A file's bytes and what it was when read.
    public struct Contents {
        public var bytes: [UInt8]
        public var info: stat
    }

    /// Reads the whole file; nil when it does not exist.
    public static func read(_ path: String) throws(Failure) -> Contents? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw Failure(path: path, step: "read", code: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(path: path, step: "stat", code: errno) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, step: "read", code: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
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
    /// fsyncs the directory (STYLE rule 8). The new file gets `mode`, and `owner` when given
    /// (root keeps an app's file owned by the app).
    public static func writeAtomically(
        _ bytes: [UInt8], to path: String, mode: mode_t, owner: (uid: uid_t, gid: gid_t)?
    ) throws(Failure) {
        let directory = parentDirectory(of: path)
        let name = path.split(separator: "/").last.map(String.init) ?? path
        // Hidden and pid-unique, so two writers never share a temp file and apps that list
        // the directory skip it.
        let temp = directory + "/." + name + ".agentron-\(getpid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Failure(path: temp, step: "create", code: errno) }
        func abandon(_ step: String, _ code: Int32, _ at: String = temp) -> Failure {
            close(fd)
            unlink(temp)
            return Failure(path: at, step: step, code: code)
        }
        // fchmod, not open's mode: the umask must not narrow or widen what the file had.
        guard fchmod(fd, mode) == 0 else { throw abandon("set the mode of", errno) }
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 { throw abandon("set the owner of", errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + written }, bytes.count - written) }
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

    /// mkdir -p; directories it creates get `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0, errno != EEXIST {
                throw Failure(path: current, step: "create the directory", code: errno)
            }
        }
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
