import Glibc

/// One daemon per state directory: an exclusive flock held for the daemon's life. The
/// kernel drops it when the process dies, so a crashed daemon never leaves a stale lock.
struct DaemonLock: Sendable {
    let fd: Int32

    struct HeldElsewhere: Error, CustomStringConvertible {
        var path: String
        var holder: String?
        var code: Int32?
        var description: String {
            if let code {
                return "cannot open lock file \(path): \(String(cString: strerror(code)))"
            }
            let who = holder.map { "(pid \($0)) " } ?? ""
            return
                "another agentrond \(who)already runs on this state directory (lock \(path)); use it, or stop it first"
        }
    }

    static func acquire(path: String) -> Result<DaemonLock, HeldElsewhere> {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(HeldElsewhere(path: path, holder: nil, code: errno)) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            let holder =
                n > 0
                ? String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first.map(String.init) : nil
            return .failure(HeldElsewhere(path: path, holder: holder, code: nil))
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return .success(DaemonLock(fd: fd))
    }

    func release() {
        close(fd)
    }
}
