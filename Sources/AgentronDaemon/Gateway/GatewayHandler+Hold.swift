import AgentronCore
import AgentronJSON
import NIOCore
import NIOHTTP1

// The cold path of GatewayHandler (docs/gateway.md, "On demand"): a request whose server
// cannot take it now is held while the registry starts it, then forwarded or answered.
extension GatewayHandler {
    /// The cold path: the request waits while the registry starts the server its model
    /// names (or finds none); then it is forwarded, or answered with why not.
    func hold(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ bytes: [UInt8], modelRange: Range<Int>,
        model: String, streaming: Bool
    ) {
        let place = demand.hold(model)
        guard place != .full else {
            respond(
                context, head, .serviceUnavailable,
                GatewayError.tooManyHeld(model, limit: HeldRequests.maxPerModel),
                extraHeaders: [("retry-after", "5")])
            return
        }
        let held = Held(model: model)
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
    func scheduleLoadingComment(_ context: ChannelHandlerContext, _ held: Held, started: NIODeadline) {
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
    func unhold(_ held: Held, cancelled: Bool) {
        guard !held.cancelled else { return }
        held.cancelled = cancelled
        held.comments?.cancel()
        held.comments = nil
        demand.release(held.model)
    }

    /// A held request whose server could not take it: the error, as a response or, when
    /// the stream's 200 is already out, as its last event.
    func answerHeld(
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
}
