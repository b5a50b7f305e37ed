import AgentronConfig
import AgentronCore
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
///
/// Taking it is one synchronous try (`tryAcquire`): the registrar runs each try, and the
/// whole lock→read→write→release section after a successful one, under the filesystem
/// identity of the directory's owner (FileIdentity), which is per thread and so must not
/// span an `await`. The registrar polls between tries.
struct ProviderFileLock: ~Copyable {
    /// Polls between tries: short first, because other writers hold it for milliseconds.
    static let firstRetry: Duration = .milliseconds(1)
    /// Polls at most this far apart, so a busy writer cannot starve us for long.
    static let maxRetry: Duration = .milliseconds(20)

    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case open(path: String, code: Int32)
        case link(path: String)
        case notRegular(path: String, kind: String)
        case timedOut(path: String, after: Duration)
        case flock(path: String, code: Int32)

        var description: String {
            switch self {
            case .open(let path, let code): "cannot open the lock file \(path): \(String(cString: strerror(code)))"
            case .link(let path):
                "the lock file \(path) is a symbolic link; agentron never follows one there: remove it (a plain file is created)"
            case .notRegular(let path, let kind):
                "the lock file \(path) is \(kind), not a regular file; left untouched: remove it (a plain file is created)"
            case .timedOut(let path, let after):
                "another process held the lock \(path) for more than \(after); will try again"
            case .flock(let path, let code): "cannot lock \(path): \(String(cString: strerror(code)))"
            }
        }
    }

    /// One try: the lock, or nil when another process holds it. Never blocks: the open
    /// neither follows a link (a planted `<file>.lock -> /anywhere` would make root create
    /// that file) nor waits on a FIFO, and anything but a regular file is refused.
    static func tryAcquire(path: String) throws(Failure) -> ProviderFileLock? {
        let flags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
        var fd = open(path, O_RDWR | O_CREAT | flags, 0o644)
        if fd < 0, errno == EACCES || errno == EROFS {
            // A lock file created by another user: flock works on a read-only descriptor too.
            fd = open(path, O_RDONLY | flags)
        }
        guard fd >= 0 else {
            if errno == ELOOP { throw .link(path: path) }
            throw .open(path: path, code: errno)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .open(path: path, code: code)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .notRegular(path: path, kind: FileIO.kind(info.st_mode))
        }
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return ProviderFileLock(fd: fd) }
            let code = errno
            if code == EINTR { continue }
            close(fd)
            guard code == EWOULDBLOCK else { throw .flock(path: path, code: code) }
            return nil
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

/// The registrar's file I/O is agentron's common one (AgentronConfig/FileIO.swift).
typealias ProviderFileIO = FileIO
