import AgentronConfig
import AgentronCore
import CProcessShims
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Serves the control API over HTTP/1.1 on a Unix socket with SwiftNIO's HTTP/1 pipeline
/// (NIOHTTP1 does the protocol; ControlAPI is the small router). Mode 0600: only the
/// owner may drive the daemon, and the kernel checks that for us on connect. Each connection
/// is checked again by its peer's credentials (PeerPolicy), so a socket whose mode was
/// widened by mistake still lets in only the users the daemon means to serve.
struct ControlServer: Service {
    let socketPath: String
    let api: ControlAPI
    let logger: Logger
    /// Resumed once the socket accepts connections (systemd READY=1 will hang off this).
    let onListening: @Sendable () -> Void
    /// A listening socket passed by systemd (socket activation, LISTEN_FDS), served instead
    /// of binding `socketPath`. systemd owns its path and mode then: no chmod, no unlink.
    var inheritedSocket: Int32? = nil

    /// Largest request body accepted: a profile is a few KiB.
    static let maxBodyBytes = 1 << 20
    /// How long a connection may take to deliver a whole request, or sit idle between two
    /// (keep-alive): a client that connects and stalls is closed instead of holding a
    /// descriptor for ever (issue #10). `AGENTRON_CONTROL_IDLE_TIMEOUT` sets it (tests).
    var requestTimeout: Duration = .seconds(30)
    /// For a root daemon: the group whose members may use the socket (mode 0660), when it
    /// exists. Nil: the socket stays 0600.
    var socketGroup: gid_t?

    /// The group `agentron` (`AGENTRON_SOCKET_GROUP` names another) when this daemon runs
    /// as root and the group exists; `agentron service install` creates it.
    static func socketGroup(environment: [String: String]) -> gid_t? {
        guard geteuid() == 0 else { return nil }
        let name = environment["AGENTRON_SOCKET_GROUP"].flatMap { $0.isEmpty ? nil : $0 } ?? "agentron"
        return UserDatabase.groupID(named: name)
    }

    func run() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
        let initializer:
            @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>> = {
                channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        if let inheritedSocket {
            server = try await bootstrap.bind(inheritedSocket, childChannelInitializer: initializer)
        } else {
            // Bound under a temporary name, given its mode and group, then renamed into place:
            // no client ever finds the socket with the umask's mode or the wrong group.
            let binding = socketPath + "~"
            server = try await bootstrap.bind(
                unixDomainSocketPath: binding, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            chmod(binding, 0o600)
            if let socketGroup {
                // A root daemon lets its group in (like docker's socket); PeerPolicy checks again.
                if chown(binding, 0, socketGroup) == 0 { chmod(binding, 0o660) }
            }
            guard rename(binding, socketPath) == 0 else {
                let reason = String(cString: strerror(errno))
                try? await server.channel.close()
                unlink(binding)
                throw ControlServerError.cannotPlaceSocket(path: socketPath, reason: reason)
            }
        }
        // The path systemd bound may differ from ours; its group and mode decide who else may connect.
        let policy = PeerPolicy(
            daemonUID: geteuid(),
            socketPath: inheritedSocket == nil ? socketPath : server.channel.localAddress?.pathname ?? socketPath)
        logger.info(
            "control API listening",
            metadata: [
                "socket": "\(socketPath)", "activation": "\(inheritedSocket == nil ? "bound" : "systemd socket")",
            ])
        onListening()
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await handle(connection, policy: policy) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
        // An inherited socket stays with systemd, which keeps listening while we restart.
        if inheritedSocket == nil { unlink(socketPath) }
    }

    private func handle(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, policy: PeerPolicy
    ) async {
        // Armed before anything else, refused connections included: no client holds a
        // descriptor for ever by sending nothing.
        let deadline = RequestDeadline(timeout: requestTimeout)
        let channel = connection.channel
        let watchdog = Task {
            while let wait = deadline.remaining() {
                do { try await Task.sleep(for: wait) } catch { return }
            }
            channel.close(promise: nil)
        }
        defer { watchdog.cancel() }
        if let refusal = await policy.refusal(for: connection.channel) {
            logger.warning("refused a control connection: \(refusal.logLine)")
            await refuse(connection, message: refusal.message)
            return
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        body = []
                    case .body(var buffer):
                        guard body.count + buffer.readableBytes <= Self.maxBodyBytes else {
                            try await write(
                                .json(
                                    status: 413,
                                    body: Array(
                                        #"{"error":{"code":"invalid_request","message":"request body too large"}}"#.utf8
                                    )), to: outbound, keepAlive: false)
                            await Self.flushAndShutOutput(channel)
                            return
                        }
                        body += buffer.readBytes(length: buffer.readableBytes) ?? []
                    case .end:
                        guard let requestHead = head else { continue }
                        // A long wait or a log stream is the daemon's doing, not a stall.
                        deadline.busy()
                        let request = Self.request(from: requestHead, body: body)
                        let reply = await api.handle(request)
                        try await write(reply, to: outbound, keepAlive: requestHead.isKeepAlive, channel: channel)
                        if !requestHead.isKeepAlive {
                            await Self.flushAndShutOutput(channel)
                            return
                        }
                        deadline.waitForNext()
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("control connection ended: \(error)")
        }
    }

    /// Answers the first request with 403 and closes: the client sees why, not a reset.
    /// Bodies are dropped unread into memory.
    private func refuse(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, message: String
    ) async {
        let reply = ControlAPI.error(APIError(.forbidden, message))
        do {
            try await connection.executeThenClose { inbound, outbound in
                for try await part in inbound {
                    guard case .end = part else { continue }
                    try await write(reply, to: outbound, keepAlive: false)
                    await Self.flushAndShutOutput(connection.channel)
                    return
                }
            }
        } catch {
            logger.debug("refused control connection ended: \(error)")
        }
    }

    /// Before a connection is closed after an answer: its output is shut once every byte
    /// written has gone out. Closing at once (what leaving `executeThenClose` does) drops
    /// what the socket's buffer could not take yet, and a client asking `Connection: close`
    /// got `ps` of a thousand servers cut short (issue #14).
    private static func flushAndShutOutput(_ channel: any Channel) async {
        try? await channel.close(mode: .output).get()
    }

    private static func request(from head: HTTPRequestHead, body: [UInt8]) -> ControlAPI.Request {
        let (path, query) = ControlRoute.split(target: head.uri)
        return ControlAPI.Request(method: head.method.rawValue, path: path, query: query, body: body)
    }

    private func write(
        _ reply: ControlAPI.Reply, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, keepAlive: Bool,
        channel: (any Channel)? = nil
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        switch reply {
        case .json(let status, let body), .text(let status, let body):
            let isJSON = if case .json = reply { true } else { false }
            headers.add(name: "Content-Type", value: isJSON ? "application/json" : "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(body.count))
            try await outbound.write(
                .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
        case .stream(let contentType, let stream):
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Transfer-Encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
            let timeout = requestTimeout
            let consumer = Task {
                for await chunk in stream {
                    // A follower that stops reading stalls this write once the socket's
                    // buffers are full: after `requestTimeout` its connection is closed.
                    let guardTask = channel.map { channel in
                        Task {
                            try await Task.sleep(for: timeout)
                            channel.close(promise: nil)
                        }
                    }
                    defer { guardTask?.cancel() }
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
                }
            }
            // A follower that goes away while the log is quiet is noticed at once: the
            // stream (and the task polling the log for it) ends with the connection.
            channel?.closeFuture.whenComplete { _ in consumer.cancel() }
            try await consumer.value
            try await outbound.write(.end(nil))
        }
    }
}

/// Who may drive the daemon, by the peer credentials the kernel recorded at connect
/// (SO_PEERCRED; the peer cannot forge them): root, the daemon's own user, and, for a root
/// daemon whose socket lets its group connect (systemd SocketGroup=, SocketMode=0660, or a
/// chgrp), members of that group.
struct PeerPolicy: Sendable {
    let daemonUID: uid_t
    /// Read per connection, so a chgrp or chmod takes effect without a restart.
    let socketPath: String

    struct Refusal: Sendable {
        var uid: UInt32?
        var pid: Int32?
        var message: String
        var logLine: String {
            "uid \(uid.map(String.init) ?? "unknown"), pid \(pid.map(String.init) ?? "unknown"): \(message)"
        }
    }

    /// nil when the peer may drive the daemon.
    func refusal(for channel: any Channel) async -> Refusal? {
        guard let provider = channel as? any SocketOptionProvider else {
            return Refusal(message: "cannot read the peer's credentials on this channel; connection refused")
        }
        let credentials: agentron_peer_credentials
        do {
            credentials = try await provider.unsafeGetSocketOption(
                level: SocketOptionLevel(agentron_sol_socket()), name: SocketOptionName(agentron_so_peercred())
            ).get()
        } catch {
            return Refusal(message: "cannot read the peer's credentials (\(error)); connection refused")
        }
        if allows(uid: credentials.uid, gid: credentials.gid) { return nil }
        return Refusal(
            uid: credentials.uid, pid: credentials.pid,
            message: "uid \(credentials.uid) may not use this agentrond (it serves uid \(daemonUID)"
                + (daemonUID == 0 ? ", root and the socket's group" : " and root")
                + "); run agentron as that user, or ask an administrator to add you to the socket's group")
    }

    func allows(uid: UInt32, gid: UInt32) -> Bool {
        if uid == 0 || uid == daemonUID { return true }
        guard daemonUID == 0, let group = socketGroup() else { return false }
        return gid == group || Self.supplementaryGroups(of: uid).contains(group)
    }

    /// The socket file's group, when its mode lets that group connect (write permission is
    /// what connect(2) needs); nil otherwise.
    func socketGroup() -> gid_t? {
        var info = stat()
        guard stat(socketPath, &info) == 0, info.st_mode & 0o020 != 0 else { return nil }
        return info.st_gid
    }

    /// The groups the user database gives `uid` (getgrouplist), empty when it has no entry.
    static func supplementaryGroups(of uid: UInt32) -> [gid_t] {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return [] }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, entry.pw_gid, &groups, &count) < 0 {
            // count now holds how many there are.
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, entry.pw_gid, &groups, &count) >= 0 else { return [] }
        }
        return Array(groups.prefix(Int(count)))
    }
}

/// When a connection must have delivered its next whole request: armed from the connect
/// and after each reply, paused while a request is being answered.
final class RequestDeadline: Sendable {
    private let timeout: Duration
    private let state: Mutex<ContinuousClock.Instant?>

    init(timeout: Duration) {
        self.timeout = timeout
        state = Mutex(ContinuousClock.now.advanced(by: timeout))
    }

    func busy() { state.withLock { $0 = nil } }
    func waitForNext() { state.withLock { $0 = ContinuousClock.now.advanced(by: timeout) } }

    /// How long to sleep before looking again; nil once the deadline has passed.
    func remaining() -> Duration? {
        state.withLock { deadline in
            guard let deadline else { return timeout }
            let left = ContinuousClock.now.duration(to: deadline)
            return left > .zero ? left : nil
        }
    }
}

enum ControlServerError: Error, CustomStringConvertible {
    case cannotPlaceSocket(path: String, reason: String)

    var description: String {
        switch self {
        case .cannotPlaceSocket(let path, let reason):
            "cannot put the control socket at \(path): \(reason); check that its directory is writable"
        }
    }
}
