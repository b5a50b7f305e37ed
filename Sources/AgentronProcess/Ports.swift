import Glibc

/// Port checks done before spawning (DESIGN §3: "the requested port is checked before
/// spawn; `port: auto` picks a free one; address in use is reported as such").
public enum Ports {
    /// Whether `host:port` can be bound right now. Binding (not connecting) is the honest
    /// test: an engine that would fail with EADDRINUSE fails here first.
    public static func isFree(host: String, port: Int) -> Bool {
        bindProbe(host: host, port: port) != nil
    }

    /// Binds a TCP socket to host:port (0 = any) and returns the bound port, or nil.
    private static func bindProbe(host: String, port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // As the engines do (uvicorn, Go, llama.cpp): a port whose last user just died and
        // left connections in TIME_WAIT or FIN_WAIT is free to them, so it is free here;
        // without this a crashed engine on a fixed port could never be restarted.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        let bindHost = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, bindHost, &address.sin_addr) == 1 else { return nil }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Who answers on a port, seen from the engine's side (issue #10): a probe that passes
    /// against another user's listener must not make the server ready, nor carry the
    /// engine's API key to it.
    public enum Ownership: Sendable, Equatable {
        /// Nothing listens: a probe would be refused.
        case nobody
        /// A process of the engine's tree holds the listening socket.
        case ours
        /// Someone else does ("pid 12 (python3)", or "uid 1001" when /proc hides the pid).
        case foreign(String)
    }

    /// Whether the socket listening on `port` belongs to one of `members`.
    /// `members` is asked only when something listens (it may scan /proc).
    public static func ownership(ofPort port: Int, members: () -> [Int32]) -> Ownership {
        let listeners = listeningSockets(port: port)
        guard !listeners.isEmpty else { return .nobody }
        let inodes = Set(listeners.map(\.inode))
        for pid in members() where processHolds(pid: pid, anyOf: inodes) { return .ours }
        if let holder = holder(ofPort: port) { return .foreign(holder) }
        let uids = Set(listeners.map(\.uid)).sorted().joined(separator: ", ")
        return .foreign("a process of uid \(uids)")
    }

    /// LISTEN sockets on `port` from /proc/net/tcp{,6}: their inode and owner uid.
    static func listeningSockets(port: Int) -> [(inode: String, uid: String)] {
        var found: [(inode: String, uid: String)] = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = readSmallFile(table, limit: 8 << 20) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address "HEX_IP:HEX_PORT", st field 3 ("0A" = LISTEN), uid field 7, inode field 9.
                guard fields.count > 9, fields[3] == "0A",
                    let colon = fields[1].lastIndex(of: ":"),
                    Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port
                else { continue }
                found.append((String(fields[9]), String(fields[7])))
            }
        }
        return found
    }

    /// Whether `pid` has a socket with one of `inodes` open.
    static func processHolds(pid: Int32, anyOf inodes: Set<String>) -> Bool {
        guard let fdDir = opendir("/proc/\(pid)/fd") else { return false }
        defer { closedir(fdDir) }
        var buffer = [CChar](repeating: 0, count: 256)
        while let fdEntry = readdir(fdDir) {
            let fdName = withUnsafePointer(to: fdEntry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            let count = readlink("/proc/\(pid)/fd/\(fdName)", &buffer, buffer.count - 1)
            guard count > 0 else { continue }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) { return true }
        }
        return false
    }

    /// The process listening on `port` (any IPv4/IPv6 address), when /proc lets us see it:
    /// "pid 1234 (python3)". Nil when the holder is not visible (another user's process).
    public static func holder(ofPort port: Int) -> String? {
        let inodes = Set(listeningSockets(port: port).map(\.inode))
        guard !inodes.isEmpty, let proc = opendir("/proc") else { return nil }
        defer { closedir(proc) }
        while let entry = readdir(proc) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let pid = Int32(name), processHolds(pid: pid, anyOf: inodes) else { continue }
            let comm = ProcStat.read(pid: pid)?.comm ?? "?"
            return "pid \(pid) (\(comm))"
        }
        return nil
    }
}
