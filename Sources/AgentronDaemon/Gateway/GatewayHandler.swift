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
        /// Waiting for its server to start (the cold path).
        case holding(Held)
        case proxying(Exchange)
    }

    /// A request held while its server starts.
    private final class Held {
        let model: String
        /// A streaming request gets its 200 and SSE comment lines while it waits.
        let streaming: Bool
        var headSent = false
        var cancelled = false
        var comments: Scheduled<Void>?

        init(model: String, streaming: Bool) {
            self.model = model
            self.streaming = streaming
        }
    }

    /// How often a held streaming request hears `: loading` (SSE comments, which clients
    /// ignore): often enough that no proxy between times the connection out.
    static let loadingCommentInterval: TimeAmount = .seconds(5)

    private final class Exchange {
        let server: String
        let host: String
        let port: Int
        let version: HTTPVersion
        let keepAlive: Bool
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

    private var state = State.idle
    private let router: GatewayRouter
    private let activity: GatewayActivity
    private let demand: GatewayDemand
    private let metrics: GatewayMetrics
    private let pool: UpstreamPool
    private let apiKey: String?
    /// The model of the request being answered, as the client named it ("" before it is
    /// known): the metrics' label.
    private var currentModel = ""

    init(
        router: GatewayRouter, activity: GatewayActivity, demand: GatewayDemand, metrics: GatewayMetrics,
        pool: UpstreamPool, apiKey: String?
    ) {
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
        if case .holding(let held) = state { unhold(held, cancelled: true) }
        state = .idle
        context.fireChannelInactive()
    }

    /// A connection with no request in progress closes after the idle timeout; one waiting
    /// for a long generation does not.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            switch state {
            case .idle, .receiving, .refused: context.close(promise: nil)
            case .holding, .proxying: break
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
        currentModel = model
        let range = member.node.range
        switch router.current.resolve(model) {
        case .route(let route) where route.isServing && route.port != nil:
            forward(
                context, head, bytes, modelRange: range, asked: model, route: route, headSent: false,
                received: .now())
        case .ambiguous(let servers):
            respond(context, head, .badRequest, GatewayError.ambiguous(model, servers: servers))
        case .route, .unknown:
            let streaming: Bool
            if case .bool(true) = node.members(named: "stream").last?.node.value {
                streaming = true
            } else {
                streaming = false
            }
            hold(context, head, bytes, modelRange: range, model: model, streaming: streaming)
        }
    }

    /// The cold path: the request waits while the registry starts the server its model
    /// names (or finds none); then it is forwarded, or answered with why not.
    private func hold(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ bytes: [UInt8], modelRange: Range<Int>,
        model: String, streaming: Bool
    ) {
        let place = demand.hold(model)
        guard place != .full else {
            respond(
                context, head, .serviceUnavailable,
                GatewayError.tooManyHeld(model, limit: GatewayDemand.maxHeldPerModel),
                extraHeaders: [("retry-after", "5")])
            return
        }
        let held = Held(model: model, streaming: streaming)
        let heldAt = NIODeadline.now()
        state = .holding(held)
        if streaming {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/event-stream; charset=utf-8")
            headers.add(name: "cache-control", value: "no-cache")
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                promise: nil)
            held.headSent = true
            scheduleLoadingComment(context, held, started: context.eventLoop.now)
        }
        demand.demand(model, on: context.eventLoop).assumeIsolated().whenComplete { result in
            guard !held.cancelled else { return }
            self.unhold(held, cancelled: false)
            self.state = .idle
            // One start per wave of held requests: the first one's wait is the start's.
            if place == .first {
                let waited = Double((NIODeadline.now() - heldAt).nanoseconds) / 1e9
                let outcome: String
                if case .success(.ready) = result { outcome = "ready" } else { outcome = "failed" }
                self.metrics.start(model: model, outcome: outcome, seconds: waited)
            }
            self.currentModel = model
            switch result {
            case .success(.ready(let route)):
                self.forward(
                    context, head, bytes, modelRange: modelRange, asked: model, route: route, headSent: held.headSent)
            case .success(.refused(let status, let json, let retryAfter)):
                self.answerHeld(
                    context, head, held, HTTPResponseStatus(statusCode: status), json, retryAfter: retryAfter)
            case .failure(let error):
                self.answerHeld(
                    context, head, held, .serviceUnavailable,
                    GatewayJSON.error("\(error)", type: "server_error", code: "model_start_failed"), retryAfter: nil)
            }
        }
    }

    /// The next `: loading` comment of a held stream, and the one after it, until unheld.
    private func scheduleLoadingComment(_ context: ChannelHandlerContext, _ held: Held, started: NIODeadline) {
        held.comments = context.eventLoop.assumeIsolated().scheduleTask(in: Self.loadingCommentInterval) {
            guard !held.cancelled, held.comments != nil else { return }
            let waited = (context.eventLoop.now - started).nanoseconds / 1_000_000_000
            var comment = context.channel.allocator.buffer(capacity: 64)
            comment.writeString(": loading \(held.model) (\(waited) s)\n\n")
            context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(comment))), promise: nil)
            self.scheduleLoadingComment(context, held, started: started)
        }
    }

    /// Ends a hold: its comments stop and its place in the model's queue is freed.
    private func unhold(_ held: Held, cancelled: Bool) {
        guard !held.cancelled else { return }
        held.cancelled = cancelled
        held.comments?.cancel()
        held.comments = nil
        demand.release(held.model)
    }

    /// A held request whose server could not take it: the error, as a response or, when
    /// the stream's 200 is already out, as its last event.
    private func answerHeld(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ held: Held, _ status: HTTPResponseStatus,
        _ json: String, retryAfter: Int?
    ) {
        guard held.headSent else {
            respond(context, head, status, json, extraHeaders: retryAfter.map { [("retry-after", "\($0)")] } ?? [])
            return
        }
        metrics.request(model: held.model, status: Int(status.code))
        endStream(context, keepAlive: head.isKeepAlive, withEvent: json)
    }

    /// Sends the request to `route`'s engine with `model` replaced by what it serves.
    private func forward(
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
        if let key = route.apiKey { headers.add(name: "authorization", value: "Bearer \(key)") }
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
    private func endStream(_ context: ChannelHandlerContext, keepAlive: Bool, withEvent json: String) {
        var event = context.channel.allocator.buffer(capacity: json.utf8.count + 16)
        event.writeString("data: \(json)\n\n")
        context.write(wrapOutboundOut(.body(.byteBuffer(event))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    private func upstreamEvent(
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
            }
            Self.addConnectionHeader(&headers, version: exchange.version, keepAlive: exchange.keepAlive)
            let head = HTTPResponseHead(version: exchange.version, status: response.status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .part(.body(let chunk)):
            if var rewriter = exchange.rewriter {
                let bytes = rewriter.process(chunk)
                exchange.rewriter = rewriter
                guard !bytes.isEmpty else { return }
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
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
        _ json: String, extraHeaders: [(String, String)] = [], contentType: String = "application/json"
    ) {
        metrics.request(model: currentModel, status: Int(status.code))
        var body = context.channel.allocator.buffer(capacity: json.utf8.count + 1)
        body.writeString(json)
        if contentType == "application/json" { body.writeString("\n") }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: "\(body.readableBytes)")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        Self.addConnectionHeader(&headers, version: version, keepAlive: keepAlive)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    // MARK: Headers

    /// `close` when the connection ends after this response; `keep-alive` for an HTTP/1.0
    /// client that asked to keep it (1.0 closes by default, and a client not told otherwise
    /// waits for the close).
    private static func addConnectionHeader(_ headers: inout HTTPHeaders, version: HTTPVersion, keepAlive: Bool) {
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "connection", value: "keep-alive")
        }
    }

    /// Headers that belong to one hop (RFC 9110 §7.6.1), the framing the encoder sets
    /// itself, and the credentials the gateway replaces.
    private static let notForwarded = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "authorization",
    ]

    private static func forwardable(_ headers: HTTPHeaders) -> HTTPHeaders {
        var out = headers
        for name in notForwarded { out.remove(name: name) }
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
