import CProcessShims
import Glibc

/// Port checks done before spawning: a requested port is checked before spawn, `port: auto`
/// gets a free one (PortTable), and "address in use" is reported as such
/// (docs/configuration.md, `port`).
public enum Ports {
    /// Whether `host:port` can be bound right now by an engine. Binding (not connecting) is
    /// the honest test: an engine that would fail with EADDRINUSE fails here first.
    ///
    /// Engines bind with SO_REUSEADDR (uvicorn, Go, llama.cpp), so a port whose last user
    /// died and left connections in TIME_WAIT is free to them, and must be free here, or a
    /// crashed engine on a fixed port could never restart. But with SO_REUSEADDR two
    /// sockets may also bind one port until one listens, and /proc/net/tcp does not list a
    /// socket that is only bound (vLLM while it loads): another server would be handed the
    /// same port (issue #10). So a port that binds only with SO_REUSEADDR is free exactly
    /// when /proc/net/tcp shows what refused the plain bind: connections on it.
    public static func isFree(host: String, port: Int) -> Bool {
        guard bindProbe(host: host, port: port, reuseAddress: true) != nil,
            sockets(port: port, states: [listenState]).isEmpty
        else { return false }
        if bindProbe(host: host, port: port, reuseAddress: false) != nil { return true }
        return !sockets(port: port, states: connectionStates).isEmpty
    }

    /// Binds a TCP socket to host:port (0 = any) and returns the bound port, or nil.
    private static func bindProbe(host: String, port: Int, reuseAddress: Bool) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        if reuseAddress { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
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

    /// How strictly a listener must be the engine's own.
    public enum ListenerCheck: Sendable, Equatable {
        /// Held by a process of the engine's tree (vLLM, Ollama bind it themselves).
        case processTree
        /// Held by a process of the daemon's user or root (a `command` engine may publish
        /// its port through docker-proxy or rootless podman, outside its tree).
        case user
        /// Not checked (TGI: Docker publishes the port).
        case none
    }

    /// Who holds the sockets listening on `port` that a connection to `host` would reach.
    /// `members` (the engine's tree) is asked only when something listens (it may scan /proc).
    public static func ownership(
        ofPort port: Int, host: String, check: ListenerCheck, members: () -> [Int32]
    ) -> Ownership {
        guard check != .none else { return .ours }
        let targets = ListenAddress.targets(for: host)
        let listeners = listeningSockets(port: port).filter { listener in
            targets.isEmpty || targets.contains { listener.address.reaches($0) }
        }
        guard !listeners.isEmpty else { return .nobody }
        let me = UInt32(geteuid())
        if check == .user {
            let strangers = listeners.filter { $0.uid != me && $0.uid != 0 }
            guard let stranger = strangers.first else { return .ours }
            return .foreign(holder(ofPort: port) ?? "a process of uid \(stranger.uid)")
        }
        var held: Set<String> = []
        var unreadable = false
        let inodes = Set(listeners.map(\.inode))
        for pid in members() {
            switch socketsHeld(by: pid, among: inodes) {
            case .some(let found): held.formUnion(found)
            case .none: unreadable = true
            }
        }
        // A listener not found in the tree is foreign, unless some member's descriptors
        // could not be read (a non-dumpable engine) and the listener is our own user's.
        let strangers = listeners.filter { !held.contains($0.inode) && !(unreadable && $0.uid == me) }
        guard let stranger = strangers.first else { return .ours }
        return .foreign(holder(ofPort: port) ?? "a process of uid \(stranger.uid)")
    }

    /// A socket from the kernel's socket table.
    struct Listener: Equatable {
        var inode: String
        var uid: UInt32
        var address: ListenAddress
    }

    /// LISTEN sockets on `port`.
    static func listeningSockets(port: Int) -> [Listener] {
        sockets(port: port, states: [listenState])
    }

    /// The `st` column of /proc/net/tcp: LISTEN, and every state of a connection
    /// (ESTABLISHED 01 to CLOSING 0B but LISTEN; TIME_WAIT is 06).
    static let listenState = "0A"
    static let connectionStates: Set<String> = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "0B"]

    /// Sockets on local `port` in one of `states`: from the kernel's socket table over
    /// netlink, or from /proc/net/tcp and /proc/net/tcp6 where netlink is not available.
    /// Reading /proc/net/tcp costs milliseconds on a busy machine (the kernel walks every
    /// connection bucket for each page it returns); starting a hundred servers at once
    /// spent three quarters of the daemon's CPU there (issue #14).
    static func sockets(port: Int, states: Set<String>) -> [Listener] {
        let mask = states.reduce(UInt32(0)) { mask, state in
            guard let number = Int(state, radix: 16), (0..<32).contains(number) else { return mask }
            return mask | (1 << UInt32(number))
        }
        if let v4 = diagSockets(family: AF_INET, port: port, states: mask),
            let v6 = diagSockets(family: AF_INET6, port: port, states: mask)
        {
            return v4 + v6
        }
        return procSockets(port: port, states: states)
    }

    /// One family's sockets from NETLINK_SOCK_DIAG; nil when the kernel does not answer.
    static func diagSockets(family: Int32, port: Int, states: UInt32) -> [Listener]? {
        guard (1...65535).contains(port) else { return [] }
        var entries = [agentron_tcp_socket](repeating: agentron_tcp_socket(), count: 16)
        var count = agentron_tcp_sockets(family, Int32(port), states, &entries, Int32(entries.count))
        if count > Int32(entries.count) {
            entries = [agentron_tcp_socket](repeating: agentron_tcp_socket(), count: Int(count))
            count = agentron_tcp_sockets(family, Int32(port), states, &entries, Int32(entries.count))
        }
        guard count >= 0 else { return nil }
        let isV6 = family == AF_INET6
        return entries.prefix(min(Int(count), entries.count)).map { entry in
            let bytes = withUnsafeBytes(of: entry.address) { Array($0.prefix(isV6 ? 16 : 4)) }
            return Listener(
                inode: String(entry.inode), uid: entry.uid,
                address: ListenAddress(isV6: isV6, hex: ListenAddress.words(bytes)))
        }
    }

    /// The same from /proc/net/tcp{,6}.
    static func procSockets(port: Int, states: Set<String>) -> [Listener] {
        var found: [Listener] = []
        for (table, isV6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
            guard let text = readSmallFile(table, limit: 8 << 20) else { continue }
            found += sockets(inTable: text, isV6: isV6, port: port, states: states)
        }
        return found
    }

    /// The sockets on local `port` in one of `states` that one table's text lists (its
    /// header line first). Lines too short or malformed are skipped.
    static func sockets(inTable text: String, isV6: Bool, port: Int, states: Set<String>) -> [Listener] {
        var found: [Listener] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // local_address "HEX_IP:HEX_PORT" field 1, st field 3, uid field 7, inode field 9.
            guard fields.count > 9, states.contains(String(fields[3])),
                let colon = fields[1].lastIndex(of: ":"),
                Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port
            else { continue }
            let hex = String(fields[1][..<colon])
            found.append(
                Listener(
                    inode: String(fields[9]), uid: UInt32(fields[7]) ?? UInt32.max,
                    address: ListenAddress(isV6: isV6, hex: hex)))
        }
        return found
    }

    /// Which of `inodes` `pid` holds; nil when its descriptors cannot be read.
    static func socketsHeld(by pid: Int32, among inodes: Set<String>) -> Set<String>? {
        guard let descriptors = directoryEntries("/proc/\(pid)/fd") else { return errno == ENOENT ? [] : nil }
        var found: Set<String> = []
        var buffer = [CChar](repeating: 0, count: 256)
        for fdName in descriptors {
            let count = readlink("/proc/\(pid)/fd/\(fdName)", &buffer, buffer.count - 1)
            guard count > 0 else { continue }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:[") else { continue }
            let inode = String(target.dropFirst(8).dropLast())
            if inodes.contains(inode) { found.insert(inode) }
        }
        return found
    }

    /// The process listening on `port` (any IPv4/IPv6 address), when /proc lets us see it:
    /// "pid 1234 (python3)". Nil when the holder is not visible (another user's process).
    public static func holder(ofPort port: Int) -> String? {
        let inodes = Set(listeningSockets(port: port).map(\.inode))
        guard !inodes.isEmpty, let processes = directoryEntries("/proc") else { return nil }
        for name in processes {
            guard let pid = Int32(name), socketsHeld(by: pid, among: inodes)?.isEmpty == false else { continue }
            let comm = ProcStat.read(pid: pid)?.comm ?? "?"
            return "pid \(pid) (\(comm))"
        }
        return nil
    }
}
