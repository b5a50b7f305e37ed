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

/// The registrar's file I/O is agentron's common one (AgentronCore/FileIO.swift).
typealias ProviderFileIO = FileIO
