import AgentronCore
import AgentronJSON
import NIOCore
import NIOHTTP1

/// One client connection to the gateway. Reads a request (its body up to a limit: the body
/// names the model), resolves the model in the routing snapshot, rewrites `model` to what
/// the engine serves and forwards the request on a pooled engine connection of the same
/// event loop. The response is passed on part by part as the engine writes it: no
/// buffering, a flush per part, so server-sent events arrive when they are sent. A client
/// that goes away closes the engine connection, which stops the generation.
final class GatewayHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Largest request body taken: chat requests with images inline run to a few MiB.
    static let maxBodyBytes = 32 << 20

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// Refused before its end: the rest is dropped and the connection closes.
        case refused
        case proxying(Exchange)
    }

    private final class Exchange {
        let server: String
        let host: String
        let port: Int
        let version: HTTPVersion
        let keepAlive: Bool
        var upstream: (any Channel)?
        var responseStarted = false
        var upstreamReusable = false
        private(set) var finished = false
        private let activity: GatewayActivity

        /// Counts as in flight for the server (its idle check) until `finish`.
        init(
            server: String, host: String, port: Int, version: HTTPVersion, keepAlive: Bool, activity: GatewayActivity
        ) {
            self.server = server
            self.host = host
            self.port = port
            self.version = version
            self.keepAlive = keepAlive
            self.activity = activity
            activity.begin(server)
        }

        /// Ends the exchange once, however it ends (answered, failed, abandoned).
        func finish() {
            guard !finished else { return }
            finished = true
            activity.end(server)
        }
    }

    private var state = State.idle
    private let router: GatewayRouter
    private let activity: GatewayActivity
    private let pool: UpstreamPool
    private let apiKey: String?

    init(router: GatewayRouter, activity: GatewayActivity, pool: UpstreamPool, apiKey: String?) {
        self.router = router
        self.activity = activity
        self.pool = pool
        self.apiKey = apiKey
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = state else { return }
            if let apiKey, !Self.isAuthorized(head.headers, key: apiKey) {
                refuse(context, head, .unauthorized, GatewayError.unauthorized)
                return
            }
            if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }), length > Self.maxBodyBytes
            {
                refuse(context, head, .payloadTooLarge, GatewayError.tooLarge(limit: Self.maxBodyBytes))
                return
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
        case .body(var chunk):
            guard case .receiving(let head, var body) = state else { return }
            guard body.readableBytes <= Self.maxBodyBytes - chunk.readableBytes else {
                refuse(context, head, .payloadTooLarge, GatewayError.tooLarge(limit: Self.maxBodyBytes))
                return
            }
            state = .idle  // drop the reference so the append does not copy
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case .end:
            guard case .receiving(let head, let body) = state else { return }
            state = .idle
            dispatch(context, head, body)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { abandon(exchange) }
        state = .idle
        context.fireChannelInactive()
    }

    /// A connection with no request in progress closes after the idle timeout; one waiting
    /// for a long generation does not.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            switch state {
            case .idle, .receiving, .refused: context.close(promise: nil)
            case .proxying: break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Requests

    private func dispatch(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        switch (head.method, path ?? "") {
        case (.GET, "/v1/models"):
            respond(context, head, .ok, GatewayJSON.models(router.current))
        case (.GET, "/health"), (.GET, "/"):
            respond(context, head, .ok, #"{"status":"ok"}"#)
        case (.POST, let path) where path.hasPrefix("/v1/"):
            proxy(context, head, body)
        case (_, let path) where path.hasPrefix("/v1/"):
            respond(context, head, .notFound, GatewayError.noRoute(method: head.method.rawValue, path: path))
        default:
            respond(context, head, .notFound, GatewayError.noRoute(method: head.method.rawValue, path: path ?? ""))
        }
    }

    private func proxy(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer) {
        let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
        guard let node = try? JSONScanner.parse(bytes), node.isObject else {
            respond(context, head, .badRequest, GatewayError.notJSON)
            return
        }
        guard let member = node.members(named: "model").last, let model = member.node.value.stringValue else {
            respond(context, head, .badRequest, GatewayError.noModel)
            return
        }
        let route: GatewayRoute
        switch router.current.resolve(model) {
        case .unknown:
            respond(context, head, .notFound, GatewayError.unknownModel(model))
            return
        case .ambiguous(let servers):
            respond(context, head, .badRequest, GatewayError.ambiguous(model, servers: servers))
            return
        case .route(let found):
            route = found
        }
        guard route.isServing, let port = route.port else {
            let retry = route.isLive ? [("retry-after", "5")] : []
            respond(context, head, .serviceUnavailable, GatewayError.notServing(route), extraHeaders: retry)
            return
        }

        var upstreamBody = context.channel.allocator.buffer(capacity: bytes.count + route.servedModel.utf8.count)
        upstreamBody.writeBytes(bytes[..<member.node.range.lowerBound])
        upstreamBody.writeString(JSONRender.quote(route.servedModel))
        upstreamBody.writeBytes(bytes[member.node.range.upperBound...])

        let host = GatewayRoute.connectHost(for: route.host)
        var headers = Self.forwardable(head.headers)
        headers.add(name: "host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        headers.add(name: "content-length", value: "\(upstreamBody.readableBytes)")
        if let key = route.apiKey { headers.add(name: "authorization", value: "Bearer \(key)") }
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)

        let exchange = Exchange(
            server: route.server, host: host, port: port, version: head.version, keepAlive: head.isKeepAlive,
            activity: activity)
        state = .proxying(exchange)
        let pool = self.pool
        pool.acquire(host: host, port: port).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                guard !exchange.finished else { return }
                exchange.finish()
                self.state = .idle
                self.respond(
                    context, exchange.version, exchange.keepAlive, .badGateway,
                    GatewayError.unreachable(exchange.server, address: "\(host):\(port)", error: "\(error)"))
            case .success(let channel):
                guard !exchange.finished,
                    let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                else {
                    pool.release(channel, host: host, port: port)
                    return
                }
                exchange.upstream = channel
                handler.sink = { event in self.upstreamEvent(event, context, exchange, handler) }
                handler.send([.head(upstreamHead), .body(.byteBuffer(upstreamBody)), .end(nil)])
            }
        }
    }

    private func upstreamEvent(
        _ event: UpstreamEvent, _ context: ChannelHandlerContext, _ exchange: Exchange, _ handler: UpstreamHandler
    ) {
        guard !exchange.finished else { return }
        switch event {
        case .part(.head(let response)):
            exchange.responseStarted = true
            exchange.upstreamReusable = response.isKeepAlive
            var headers = Self.forwardable(response.headers)
            if let length = response.headers.first(name: "content-length") {
                headers.add(name: "content-length", value: length)
            }
            if !exchange.keepAlive { headers.add(name: "connection", value: "close") }
            let head = HTTPResponseHead(version: exchange.version, status: response.status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .part(.body(let chunk)):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
        case .part(.end):
            exchange.finish()
            handler.sink = nil
            if let upstream = exchange.upstream {
                if exchange.upstreamReusable {
                    pool.release(upstream, host: exchange.host, port: exchange.port)
                } else {
                    upstream.close(promise: nil)
                }
            }
            state = .idle
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !exchange.keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        case .closed:
            exchange.finish()
            state = .idle
            if exchange.responseStarted {
                // The engine died mid-response: the client's response ends too, not silently short.
                context.close(promise: nil)
            } else {
                respond(context, exchange.version, false, .badGateway, GatewayError.closedEarly(exchange.server))
            }
        }
    }

    /// The client went away: the engine connection is closed, which ends the generation.
    private func abandon(_ exchange: Exchange) {
        guard !exchange.finished else { return }
        exchange.finish()
        exchange.upstream?.close(promise: nil)
    }

    // MARK: Responses

    private func refuse(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ json: String
    ) {
        state = .refused
        respond(context, head.version, false, status, json)
    }

    private func respond(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ json: String,
        extraHeaders: [(String, String)] = []
    ) {
        respond(context, head.version, head.isKeepAlive, status, json, extraHeaders: extraHeaders)
    }

    private func respond(
        _ context: ChannelHandlerContext, _ version: HTTPVersion, _ keepAlive: Bool, _ status: HTTPResponseStatus,
        _ json: String, extraHeaders: [(String, String)] = []
    ) {
        var body = context.channel.allocator.buffer(capacity: json.utf8.count + 1)
        body.writeString(json)
        body.writeString("\n")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(body.readableBytes)")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    // MARK: Headers

    /// Headers that belong to one hop (RFC 9110 §7.6.1), the framing the encoder sets
    /// itself, and the credentials the gateway replaces.
    private static let notForwarded: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "authorization",
    ]

    private static func forwardable(_ headers: HTTPHeaders) -> HTTPHeaders {
        var out = HTTPHeaders()
        for (name, value) in headers where !notForwarded.contains(name.lowercased()) {
            out.add(name: name, value: value)
        }
        return out
    }

    static func isAuthorized(_ headers: HTTPHeaders, key: String) -> Bool {
        guard let value = headers.first(name: "authorization"), value.lowercased().hasPrefix("bearer ") else {
            return false
        }
        let given = Array(value.utf8.dropFirst("bearer ".count))
        let wanted = Array(key.utf8)
        // Every byte compared, so the time taken does not tell how much of a guess was right.
        var difference = given.count ^ wanted.count
        for index in 0..<max(given.count, wanted.count) {
            let a = index < given.count ? given[index] : 0
            let b = index < wanted.count ? wanted[index] : 0
            difference |= Int(a ^ b)
        }
        return difference == 0
    }
}
