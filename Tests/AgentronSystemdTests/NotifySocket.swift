import Glibc

/// Plays the service manager's side of sd_notify: an AF_UNIX datagram socket bound to a
/// fresh path, read with a timeout. Each test gets its own, so tests run in parallel and
/// never touch the process environment.
final class NotifySocket {
    let path: String
    let fd: Int32

    init() throws {
        // sun_path holds 108 bytes: stay in /tmp with a short name.
        var template = Array("/tmp/agentron-notify-XXXXXX".utf8CString)
        guard let directory = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw NotifySocketError("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: directory) + "/notify"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NotifySocketError("socket failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw NotifySocketError("bind \(path) failed: errno \(errno)") }
    }

    deinit {
        close(fd)
        unlink(path)
        rmdir(String(path.dropLast("/notify".count)))
    }

    /// The next datagram, or nil when none arrives within `milliseconds`.
    func receive(timeoutMilliseconds milliseconds: Int32 = 2000) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

struct NotifySocketError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
