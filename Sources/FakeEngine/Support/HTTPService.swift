import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

// The HTTP/1.1 server every mode runs on an already bound socket: one handler that reads a
// whole request, asks the mode's routes for a reply and writes it, now, later (a model
// still loading) or as timed chunks (a pull's progress, SSE tokens).

/// One complete request.
struct Request: Sendable {
    var head: HTTPRequestHead
    var body: [UInt8]

    var method: HTTPMethod { head.method }
    var path: String {
        String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
    func header(_ name: String) -> String? { head.headers.first(name: name) }
    var json: JSON? { JSON.parse(body) }
}

/// One piece of a streamed body, sent `delay` seconds after the one before, after `action`.
struct Chunk: Sendable {
    var delay = 0.0
    var text: String
    var action: (@Sendable () -> Void)?
}

enum Reply: Sendable {
    case full(HTTPResponseStatus, contentType: String?, body: String, headers: [(String, String)] = [])
    /// 200 with a chunked body: NDJSON lines or SSE events.
    case stream(contentType: String, chunks: [Chunk], headers: [(String, String)] = [])
    /// Computed after some seconds (a model loading first).
    case later(Double, @Sendable () -> Reply)
    /// Hung: say nothing.
    case silence

    static func json(
        _ status: HTTPResponseStatus, _ value: JSON, type: String = "application/json", headers: [(String, String)] = []
    ) -> Reply {
        .full(status, contentType: type, body: value.text, headers: headers)
    }
    static func empty(_ status: HTTPResponseStatus, headers: [(String, String)] = []) -> Reply {
        .full(status, contentType: nil, body: "", headers: headers)
    }
}

/// A flag the main thread sets and the event loop reads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// A mode's HTTP surface: its routes, the headers it always sends, its access log.
final class HTTPService: Sendable {
    /// FAKE_HANG_AFTER fired: accept and read, never answer.
    let hung = Flag()
    /// One event-loop thread: 100 engines run side by side in the benchmark. main.swift has
    /// blocked the awaited signals before any service exists, so this thread never takes them.
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let maximumBodyBytes: Int
    let tooLarge: Reply
    let headers: @Sendable () -> [(String, String)]
    let route: @Sendable (Request) -> Reply
    /// Called once a reply's end is written: request, status, peer, seconds taken.
    let log: @Sendable (Request, HTTPResponseStatus, SocketAddress?, Double) -> Void

    init(
        maximumBodyBytes: Int, tooLarge: Reply, headers: @escaping @Sendable () -> [(String, String)],
        log: @escaping @Sendable (Request, HTTPResponseStatus, SocketAddress?, Double) -> Void,
        route: @escaping @Sendable (Request) -> Reply
    ) {
        self.maximumBodyBytes = maximumBodyBytes
        self.tooLarge = tooLarge
        self.headers = headers
        self.log = log
        self.route = route
    }

    /// Listens on `fd` (bound already) and serves, with TCP_NODELAY like uvicorn, Go and axum.
    func serve(on fd: Int32) throws -> Channel {
        try ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(service: self))
                }
            }
            .withBoundSocket(fd)
            .wait()
    }

    /// Writes `reply` through the channel, so later and streamed replies (written from
    /// scheduled tasks) go the same way as immediate ones. HTTPServerPipelineHandler holds
    /// pipelined requests back until a reply's end is written.
    func deliver(_ reply: Reply, for request: Request, channel: Channel, started: Double) {
        var headers = HTTPHeaders(self.headers())
        if !request.head.isKeepAlive { headers.add(name: "connection", value: "close") }
        func head(_ status: HTTPResponseStatus) -> HTTPServerResponsePart {
            .head(HTTPResponseHead(version: request.head.version, status: status, headers: headers))
        }
        switch reply {
        case .silence:
            return
        case .later(let seconds, let then):
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(min(seconds, Knobs.maximumSeconds) * 1e9))) {
                guard channel.isActive else { return }
                self.deliver(then(), for: request, channel: channel, started: started)
            }
        case .full(let status, let contentType, let text, let extra):
            let bytes = ByteBuffer(string: text)
            if let contentType { headers.add(name: "content-type", value: contentType) }
            headers.add(contentsOf: extra)
            headers.add(name: "content-length", value: String(bytes.readableBytes))
            channel.write(head(status), promise: nil)
            if bytes.readableBytes > 0, request.method != .HEAD {
                channel.write(HTTPServerResponsePart.body(.byteBuffer(bytes)), promise: nil)
            }
            finish(status, request: request, channel: channel, started: started)
        case .stream(let contentType, let chunks, let extra):
            // No content-length: NIO sends HTTP/1.1 chunked, one chunk per line or event.
            headers.add(name: "content-type", value: contentType)
            headers.add(contentsOf: extra)
            channel.writeAndFlush(head(.ok), promise: nil)
            send(chunks[...], request: request, channel: channel, started: started)
        }
    }

    private func send(_ chunks: ArraySlice<Chunk>, request: Request, channel: Channel, started: Double) {
        guard let chunk = chunks.first else { return finish(.ok, request: request, channel: channel, started: started) }
        let write: @Sendable () -> Void = {
            // A client that went away ends the stream (a pull is then not marked done).
            guard channel.isActive else { return }
            chunk.action?()
            channel.writeAndFlush(
                HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: chunk.text))), promise: nil)
            self.send(chunks.dropFirst(), request: request, channel: channel, started: started)
        }
        guard chunk.delay > 0 else { return write() }
        channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(min(chunk.delay, Knobs.maximumSeconds) * 1e9)), write)
    }

    private func finish(_ status: HTTPResponseStatus, request: Request, channel: Channel, started: Double) {
        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        if !request.head.isKeepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
        log(request, status, channel.remoteAddress, Clock.now() - started)
    }
}

/// Collects one request's head and bounded body, then hands it to the service.
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: HTTPService
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(service: HTTPService) { self.service = service }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            (head, body, tooLarge) = (requestHead, [], false)
            // The engines' servers answer "Expect: 100-continue", so curl does not wait a second.
            if requestHead.headers.first(name: "expect")?.lowercased() == "100-continue", !service.hung.isSet {
                let informational = HTTPResponseHead(version: requestHead.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(informational)), promise: nil)
            }
        case .body(let chunk):
            if body.count + chunk.readableBytes > service.maximumBodyBytes {
                tooLarge = true
            } else {
                body += chunk.readableBytesView
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            let request = Request(head: requestHead, body: body)
            let reply = service.hung.isSet ? .silence : tooLarge ? service.tooLarge : service.route(request)
            service.deliver(reply, for: request, channel: context.channel, started: Clock.now())
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
