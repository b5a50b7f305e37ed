import Glibc

// The file side of the registrar: the advisory lock other writers share, and the atomic
// replace that keeps a reader from ever seeing a torn file (issue #4, docs/providers.md).
//
// Lock protocol (documented for apps in docs/providers.md): open `<file>.lock` (create it if
// missing, mode 0644), `flock(LOCK_EX)`, read the file, write a temp file in the same
// directory, fsync, rename it over the file, then close the lock file. The lock is on a
// sidecar and never on the file itself, because rename replaces the file's inode and a
// lock on the old one would protect nothing.

/// An exclusive `flock` on a sidecar lock file, released by `release()` (or by the kernel
/// when the process dies, so a crash never leaves it stuck).
struct ProviderFileLock: ~Copyable {
    /// Polls between tries: short first, because other writers hold it for milliseconds.
    static let firstRetry: Duration = .milliseconds(1)
    /// Polls at most this far apart, so a busy writer cannot starve us for long.
    static let maxRetry: Duration = .milliseconds(20)

    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case open(path: String, code: Int32)
        case timedOut(path: String, after: Duration)
        case flock(path: String, code: Int32)

        var description: String {
            switch self {
            case .open(let path, let code): "cannot open the lock file \(path): \(String(cString: strerror(code)))"
            case .timedOut(let path, let after):
                "another process held the lock \(path) for more than \(after); will try again"
            case .flock(let path, let code): "cannot lock \(path): \(String(cString: strerror(code)))"
            }
        }
    }

    /// Takes the lock without blocking a thread: tries, then sleeps a little, until `timeout`.
    static func acquire(path: String, timeout: Duration) async throws(Failure) -> ProviderFileLock {
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0, errno == EACCES || errno == EROFS {
            // A lock file created by another user: flock works on a read-only descriptor too.
            fd = open(path, O_RDONLY | O_CLOEXEC)
        }
        guard fd >= 0 else { throw .open(path: path, code: errno) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var wait = firstRetry
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return ProviderFileLock(fd: fd) }
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK else {
                close(fd)
                throw .flock(path: path, code: code)
            }
            guard clock.now < deadline else {
                close(fd)
                throw .timedOut(path: path, after: timeout)
            }
            do {
                try await Task.sleep(for: wait)
            } catch {
                close(fd)
                throw .timedOut(path: path, after: timeout)
            }
            wait = min(wait * 2, maxRetry)
        }
    }

    consuming func release() {
        close(fd)
        discard self
    }

    deinit {
        close(fd)
    }
}

/// What identifies one version of a file: a change by anyone alters at least one of these.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = Int(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
    }

    /// The stamp of `path` (following symlinks), nil when it does not exist.
    static func of(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(info)
    }
}

enum ProviderFileIO {
    struct Failure: Error, CustomStringConvertible {
        var path: String
        var step: String
        var code: Int32
        var description: String { "cannot \(step) \(path): \(String(cString: strerror(code)))" }
    }

    /// A file's bytes and what it was when read.
    struct Contents {
        var bytes: [UInt8]
        var info: stat
    }

    /// Reads the whole file; nil when it does not exist.
    static func read(_ path: String) throws(Failure) -> Contents? {
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
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path` and
    /// fsyncs the directory (STYLE rule 8). The new file gets `mode`, and `owner` when given
    /// (root keeps an app's file owned by the app).
    static func writeAtomically(
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
    static func makeDirectories(_ path: String, mode: mode_t) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0, errno != EEXIST {
                throw Failure(path: current, step: "create the directory", code: errno)
            }
        }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
