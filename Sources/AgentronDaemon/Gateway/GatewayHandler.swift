import AgentronCore
import AgentronJSON
import NIOCore
import NIOHTTP1

/// One client connection to the gateway. Reads a request (its body up to a limit: the body
/// names the model), resolves the model in the routing snapshot, rewrites `model` to what
/// the engine serves and forwards the request on a pooled engine connection of the same
/// event loop. The response is passed on part by part as the engine writes it: no
/// buffering, a flush whenever the engine's read completes, so server-sent events arrive
/// when they are sent. A client
/// that goes away closes the engine connection, which stops the generation.
final class GatewayHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Largest request body taken: chat requests with images inline run to a few MiB.
    static let maxBodyBytes = 32 << 20

    enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// Refused before its end: the rest is dropped and the connection closes.
        case refused
        /// Waiting for its server to start (the cold path).
        case holding(Held)
        case proxying(Exchange)
    }

    /// A request held while its server starts.
    final class Held {
        let model: String
        /// A streaming request has its 200 and hears SSE comment lines while it waits.
        var headSent = false
        var cancelled = false
        var comments: Scheduled<Void>?

        init(model: String) {
            self.model = model
        }
    }

    /// How often a held streaming request hears `: loading` (SSE comments, which clients
    /// ignore): often enough that no proxy between times the connection out.
    static let loadingCommentInterval: TimeAmount = .seconds(5)

    final class Exchange {
        let server: String
        let host: String
        let port: Int
        let version: HTTPVersion
        var keepAlive: Bool
        var upstream: (any Channel)?
        /// The client already has a response head (a held streaming request's 200).
        var headSent = false
        /// Puts the client's name for the model back into the response.
        var rewriter: ModelRewriter?
        /// The model as the client named it (the metrics' label).
        var asked = ""
        /// When the engine request was written, for the upstream latency.
        var sentAt: NIODeadline?
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

    var state = State.idle {
        didSet { if case .idle = state { idleSince = .now() } }
    }
    /// When the connection last became free for a request (opened, or a response ended).
    var idleSince = NIODeadline.now()
    /// How long a free connection may take to deliver a whole request: a client that
    /// connects and stalls, or trickles its request, holds no descriptor for ever.
    let requestTimeout: TimeAmount
    var deadline: Scheduled<Void>?
    let router: GatewayRouter
    let activity: GatewayActivity
    let demand: GatewayDemand
    let metrics: GatewayMetrics
    let pool: UpstreamPool
    let apiKey: String?
    /// The model of the request being answered, as the client named it ("" before it is
    /// known): the metrics' label.
    var currentModel = ""

    init(
        router: GatewayRouter, activity: GatewayActivity, demand: GatewayDemand, metrics: GatewayMetrics,
        pool: UpstreamPool, apiKey: String?, requestTimeout: TimeAmount
    ) {
        self.requestTimeout = requestTimeout
        self.router = router
        self.activity = activity
        self.demand = demand
        self.metrics = metrics
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
            if body.readableBytes == 0 {
                state = .receiving(head, chunk)  // a body in one read is kept as it came
                return
            }
            state = .refused  // drop the reference so the append does not copy (not `.idle`: no new clock)
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case .end:
            guard case .receiving(let head, let body) = state else { return }
            state = .idle
            dispatch(context, head, body)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        idleSince = .now()
        armDeadline(context, in: requestTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if case .proxying(let exchange) = state { abandon(exchange) }
        if case .holding(let held) = state { unhold(held, cancelled: true) }
        state = .idle
        context.fireChannelInactive()
    }

    /// Closes a connection that has been free for `requestTimeout` without delivering a
    /// whole request; one waiting for a long generation (held or proxying) is not touched.
    /// One timer per connection, moved forward rather than re-made per request.
    func armDeadline(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            switch self.state {
            case .holding, .proxying:
                self.armDeadline(context, in: self.requestTimeout)
            case .idle, .receiving, .refused:
                let left = self.requestTimeout - (NIODeadline.now() - self.idleSince)
                if left > .zero {
                    self.armDeadline(context, in: left)
                } else {
                    self.deadline = nil
                    context.close(promise: nil)
                }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Requests

    func dispatch(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer) {
        currentModel = ""
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        switch (head.method, path ?? "") {
        case (.GET, "/v1/models"):
            state = .refused  // nothing else is read until it is answered
            demand.models(on: context.eventLoop).assumeIsolated().whenComplete { result in
                self.state = .idle
                switch result {
                case .success(let json): self.respond(context, head, .ok, json)
                case .failure: self.respond(context, head, .ok, GatewayJSON.models(self.router.current))
                }
            }
        case (.GET, "/metrics"):
            respond(
                context, head.version, head.isKeepAlive, .ok,
                metrics.render(inFlight: activity.inFlight, held: demand.totalHeld),
                contentType: "text/plain; version=0.0.4; charset=utf-8")
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

    func proxy(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer) {
        let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
        // Only `model` and `stream` are built; the rest of the body is checked, not decoded.
        guard let found = try? JSONScanner.members(["model", "stream"], of: bytes) else {
            respond(context, head, .badRequest, GatewayError.notJSON)
            return
        }
        guard let member = found["model"], let model = member.value.stringValue else {
            respond(context, head, .badRequest, GatewayError.noModel)
            return
        }
        currentModel = model
        let range = member.range
        switch router.current.resolve(model) {
        case .route(let route) where route.isServing && route.port != nil:
            forward(
                context, head, bytes, modelRange: range, asked: model, route: route, headSent: false,
                received: .now())
        case .ambiguous(let servers):
            respond(context, head, .badRequest, GatewayError.ambiguous(model, servers: servers))
        case .route, .unknown:
            let streaming: Bool
            if case .bool(true) = found["stream"]?.value { streaming = true } else { streaming = false }
            hold(context, head, bytes, modelRange: range, model: model, streaming: streaming)
        }
    }

    /// Sends the request to `route`'s engine with `model` replaced by what it serves.
    func forward(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ bytes: [UInt8], modelRange: Range<Int>,
        asked: String, route: GatewayRoute, headSent: Bool, received: NIODeadline? = nil
    ) {
        guard let port = route.port else { return }
        var upstreamBody = context.channel.allocator.buffer(capacity: bytes.count + route.servedModel.utf8.count)
        upstreamBody.writeBytes(bytes[..<modelRange.lowerBound])
        upstreamBody.writeString(JSONRender.quote(route.servedModel))
        upstreamBody.writeBytes(bytes[modelRange.upperBound...])

        let host = GatewayRoute.connectHost(for: route.host)
        var headers = Self.forwardable(head.headers)
        headers.add(name: "host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        headers.add(name: "content-length", value: "\(upstreamBody.readableBytes)")
        // A key with a control character would split the header: it is not sent (the
        // engine then answers 401, which the client sees).
        if let key = route.apiKey, key.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) {
            headers.add(name: "authorization", value: "Bearer \(key)")
        }
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)

        let exchange = Exchange(
            server: route.server, host: host, port: port, version: head.version, keepAlive: head.isKeepAlive,
            activity: activity)
        exchange.headSent = headSent
        exchange.asked = asked
        // HTTP/1.0 has no chunked responses, so a body that changes length cannot be sent.
        if head.version != .http1_0 { exchange.rewriter = ModelRewriter(served: route.servedModel, asked: asked) }
        state = .proxying(exchange)
        let pool = self.pool
        pool.acquire(host: host, port: port).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                guard !exchange.finished else { return }
                exchange.finish()
                self.state = .idle
                let json = GatewayError.unreachable(exchange.server, address: "\(host):\(port)", error: "\(error)")
                if exchange.headSent {
                    self.endStream(context, keepAlive: exchange.keepAlive, withEvent: json)
                } else {
                    self.respond(context, exchange.version, exchange.keepAlive, .badGateway, json)
                }
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
                let sent = NIODeadline.now()
                exchange.sentAt = sent
                if let received { self.metrics.overhead(Double((sent - received).nanoseconds) / 1e9) }
            }
        }
    }

    /// Ends a stream whose 200 is already out with one last event (an error's JSON).
    func endStream(_ context: ChannelHandlerContext, keepAlive: Bool, withEvent json: String) {
        var event = context.channel.allocator.buffer(capacity: json.utf8.count + 16)
        event.writeString("data: \(json)\n\n")
        context.write(wrapOutboundOut(.body(.byteBuffer(event))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    func upstreamEvent(
        _ event: UpstreamEvent, _ context: ChannelHandlerContext, _ exchange: Exchange, _ handler: UpstreamHandler
    ) {
        guard !exchange.finished else { return }
        switch event {
        case .part(.head(let response)):
            exchange.responseStarted = true
            exchange.upstreamReusable = response.isKeepAlive
            if let sent = exchange.sentAt { metrics.upstream(Double((NIODeadline.now() - sent).nanoseconds) / 1e9) }
            metrics.request(model: exchange.asked, status: Int(response.status.code))
            // A held stream already has its 200: the engine's events follow its comments.
            guard !exchange.headSent else { return }
            var headers = Self.forwardable(response.headers)
            // A rewritten body may change length: it goes out chunked instead.
            if exchange.rewriter == nil, let length = response.headers.first(name: "content-length") {
                headers.add(name: "content-length", value: length)
            } else if exchange.version == .http1_0 {
                // HTTP/1.0 has no chunks: a body of unknown length ends when the connection does.
                exchange.keepAlive = false
            }
            Self.addConnectionHeader(&headers, version: exchange.version, keepAlive: exchange.keepAlive)
            let head = HTTPResponseHead(version: exchange.version, status: response.status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .part(.body(let chunk)):
            if let out = exchange.rewriter?.process(chunk) {
                guard out.readableBytes > 0 else { return }
                context.write(wrapOutboundOut(.body(.byteBuffer(out))), promise: nil)
            } else {
                context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
            }
        case .readComplete:
            context.flush()
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
            if var rewriter = exchange.rewriter {
                let tail = rewriter.finish()
                if !tail.isEmpty {
                    context.write(
                        wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: tail)))), promise: nil
                    )
                }
            }
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !exchange.keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        case .closed:
            exchange.finish()
            state = .idle
            if exchange.responseStarted || exchange.headSent {
                // The engine died mid-response: the client's response ends too, not silently short.
                context.close(promise: nil)
            } else {
                respond(context, exchange.version, false, .badGateway, GatewayError.closedEarly(exchange.server))
            }
        }
    }

    /// The client went away: the engine connection is closed, which ends the generation.
    func abandon(_ exchange: Exchange) {
        guard !exchange.finished else { return }
        exchange.finish()
        exchange.upstream?.close(promise: nil)
    }

}
