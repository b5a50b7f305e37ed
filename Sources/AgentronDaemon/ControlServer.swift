import AgentronCore
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Serves the control API over HTTP/1.1 on a Unix socket with SwiftNIO's HTTP/1 pipeline
/// (NIOHTTP1 does the protocol; ControlAPI is the small router). Mode 0600: only the
/// owner may drive the daemon, and the kernel checks that for us on connect.
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

    func run() async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>> = { channel in
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
            server = try await bootstrap.bind(
                unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            chmod(socketPath, 0o600)
        }
        logger.info(
            "control API listening",
            metadata: ["socket": "\(socketPath)", "activation": "\(inheritedSocket == nil ? "bound" : "systemd socket")"])
        onListening()
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await handle(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
        // An inherited socket stays with systemd, which keeps listening while we restart.
        if inheritedSocket == nil { unlink(socketPath) }
    }

    private func handle(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
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
                            try await write(.json(status: 413, body: Array(#"{"error":{"code":"invalid_request","message":"request body too large"}}"#.utf8)), to: outbound, keepAlive: false)
                            return
                        }
                        body += buffer.readBytes(length: buffer.readableBytes) ?? []
                    case .end:
                        guard let requestHead = head else { continue }
                        let request = Self.request(from: requestHead, body: body)
                        let reply = await api.handle(request)
                        try await write(reply, to: outbound, keepAlive: requestHead.isKeepAlive)
                        if !requestHead.isKeepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("control connection ended: \(error)")
        }
    }

    private static func request(from head: HTTPRequestHead, body: [UInt8]) -> ControlAPI.Request {
        let (path, queryText) = head.uri.split(separator: "?", maxSplits: 1).reduce(into: ("", "")) { result, part in
            if result.0.isEmpty { result.0 = String(part) } else { result.1 = String(part) }
        }
        return ControlAPI.Request(method: head.method.rawValue, path: path, query: parseQuery(queryText), body: body)
    }

    private func write(
        _ reply: ControlAPI.Reply, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, keepAlive: Bool
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        switch reply {
        case .json(let status, let body), .text(let status, let body):
            let isJSON = if case .json = reply { true } else { false }
            headers.add(name: "Content-Type", value: isJSON ? "application/json" : "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(body.count))
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
        case .stream(let contentType, let stream):
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Transfer-Encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
            for await chunk in stream {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
            }
            try await outbound.write(.end(nil))
        }
    }
}

/// `a=1&b&=x&c=%2F`: pairs split on the first `=`, a bare key means "true", an empty key is
/// ignored. Never indexes past what it split (`?=` once crashed the daemon, issue #10).
func parseQuery(_ text: String) -> [String: String] {
    var query: [String: String] = [:]
    for pair in text.split(separator: "&") {
        let key: Substring
        let value: Substring?
        if let equals = pair.firstIndex(of: "=") {
            key = pair[..<equals]
            value = pair[pair.index(after: equals)...]
        } else {
            key = pair
            value = nil
        }
        guard !key.isEmpty else { continue }
        query[String(key).removingPercentEncoding] = value.map { String($0).removingPercentEncoding } ?? "true"
    }
    return query
}

extension String {
    /// `%2F` → `/`, `+` stays: enough for the names and numbers in our query strings.
    fileprivate var removingPercentEncoding: String {
        let input = Array(utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
                let high = Self.hexValue(input[index + 1]), let low = Self.hexValue(input[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
