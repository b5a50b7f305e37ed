import AgentronConfig
import AgentronCore
import Glibc

/// Sockets passed by systemd (socket activation), with the semantics of sd_listen_fds(3)
/// called with unset_environment=1.
public enum ListenFDs {
    /// SD_LISTEN_FDS_START: passed descriptors start right after stdin, stdout, stderr.
    public static let start: Int32 = 3

    /// The descriptors the environment says were passed to `pid`: none unless LISTEN_PID is
    /// `pid` (the variables may have been inherited from a parent that was the real target)
    /// and LISTEN_FDS is a positive count.
    public static func parse(environment: [String: String], pid: pid_t) -> [Int32] {
        guard let owner = environment["LISTEN_PID"], let ownerPid = pid_t(owner), ownerPid == pid,
            let countText = environment["LISTEN_FDS"], let count = Int32(countText), count > 0,
            count <= Int32.max - start
        else { return [] }
        return Array(start..<(start + count))
    }

    /// Takes the passed descriptors: marks them close-on-exec (an engine must never inherit
    /// the control socket) and removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the
    /// process environment, so nothing started later mistakes them for its own. Returns no
    /// descriptors if any of them is not open.
    public static func take(environment: [String: String] = ProcessEnvironment.current) -> [Int32] {
        let fds = parse(environment: environment, pid: getpid())
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        for fd in fds {
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 else { return [] }
        }
        return fds
    }

    /// Whether `fd` is a listening AF_UNIX stream socket (what the control API needs).
    public static func isListeningUnixStream(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else {
            return false
        }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting != 0 else { return false }
        var address = sockaddr_storage()
        var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
        }
        return named == 0 && Int32(address.ss_family) == AF_UNIX
    }
}
