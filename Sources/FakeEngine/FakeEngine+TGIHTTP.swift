import NIOCore
import NIOHTTP1
import Synchronization

// TGI's router HTTP surface (axum): `/`, `/health`, `/ping` (200, empty body), `/info`,
// `/v1/models`, `/metrics`, and the generation routes `/generate`, `/generate_stream`,
// POST `/`, `/v1/chat/completions`, `/v1/completions` (guarded by --api-key when set; the
// info routes never are). axum's habits: 404/405 with empty bodies, JSON extractor
// rejections as text/plain (415 without a JSON content type, 400 for a syntax error, 422
// for a missing or mistyped field), SSE events written `data:<json>` with no space.

/// What the event loop reads and the lifecycle thread writes.
final class TGIServerState: Sendable {
    let options: TGIOptions
    let log: TGILog
    /// FAKE_HANG_AFTER fired: accept, read, never answer.
    let hung = Atomic<Bool>(false)
    let requestCount = Atomic<Int>(0)
    let successCount = Atomic<Int>(0)

    init(options: TGIOptions, log: TGILog) {
        self.options = options
        self.log = log
    }
}

/// A reply the handler writes.
enum TGIReply: Equatable {
    case full(status: HTTPResponseStatus, contentType: String?, body: String, headers: [String: String] = [:])
    /// `text/event-stream`: each element is one complete event (`data:...\n\n`).
    case eventStream([String], headers: [String: String] = [:])
    /// Hung: say nothing.
    case silence

    static func json(_ status: HTTPResponseStatus, _ body: String, headers: [String: String] = [:]) -> TGIReply {
        .full(status: status, contentType: "application/json", body: body, headers: headers)
    }
    static func text(_ status: HTTPResponseStatus, _ body: String) -> TGIReply {
        .full(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }
    static func empty(_ status: HTTPResponseStatus, headers: [String: String] = [:]) -> TGIReply {
        .full(status: status, contentType: nil, body: "", headers: headers)
    }

    var status: HTTPResponseStatus? {
        switch self {
        case .full(let status, _, _, _): status
        case .eventStream: .ok
        case .silence: nil
        }
    }
}

enum TGIRoutes {
    static let getRoutes: Set<String> = ["/", "/health", "/ping", "/info", "/v1/models", "/metrics"]
    static let postRoutes: Set<String> = ["/", "/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions"]

    /// Routes one complete request. Pure apart from reading `state` and the clock.
    static func reply(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: [UInt8], state: TGIServerState) -> TGIReply {
        if state.hung.load(ordering: .acquiring) { return .silence }
        let path = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")

        let allowsGet = getRoutes.contains(path)
        let allowsPost = postRoutes.contains(path)
        guard allowsGet || allowsPost else { return .empty(.notFound) }
        let isGet = method == .GET || method == .HEAD
        guard (isGet && allowsGet) || (method == .POST && allowsPost) else {
            let allow = (allowsGet ? ["GET", "HEAD"] : []) + (allowsPost ? ["POST"] : [])
            return .empty(.methodNotAllowed, headers: ["allow": allow.joined(separator: ",")])
        }

        if isGet {
            switch path {
            case "/", "/health", "/ping": return .empty(.ok)
            case "/info": return .json(.ok, TGICompletions.info(state.options))
            case "/v1/models": return .json(.ok, TGICompletions.models(state.options))
            default: return .full(status: .ok, contentType: "text/plain; charset=utf-8", body: TGICompletions.metrics(state))
            }
        }

        // Generation routes: the --api-key middleware first, then axum's Json extractor.
        if let key = state.options.apiKey {
            let expected = "bearer " + key.lowercased()
            guard headers.first(name: "authorization")?.lowercased() == expected else { return .empty(.unauthorized) }
        }
        state.requestCount.add(1, ordering: .relaxed)
        let json: JSONValue
        switch TGICompletions.extractJSON(headers: headers, body: body) {
        case .success(let value): json = value
        case .failure(let rejection): return rejection.reply
        }
        let reply: TGIReply
        switch path {
        case "/v1/chat/completions": reply = TGICompletions.chat(json, body: body, state: state)
        case "/v1/completions": reply = TGICompletions.completion(json, body: body, state: state)
        case "/generate": reply = TGICompletions.generate(json, body: body, stream: false, compat: false, state: state)
        case "/generate_stream": reply = TGICompletions.generate(json, body: body, stream: true, compat: false, state: state)
        default: reply = TGICompletions.generate(json, body: body, stream: json["stream"]?.boolValue ?? false, compat: true, state: state)
        }
        if reply.status == .ok {
            state.successCount.add(1, ordering: .relaxed)
            let span = path == "/v1/chat/completions" ? "chat_completions" : path == "/v1/completions" ? "completions" : "generate"
            state.log.info(
                "router/src/server.rs:637: Success", span: span + "{total_time=\"1.2ms\" validation_time=\"120µs\" "
                    + "queue_time=\"40µs\" inference_time=\"1.0ms\" time_per_token=\"100µs\" seed=\"None\"}",
                target: TGILog.server)
        }
        return reply
    }
}

/// Reads requests and answers them one at a time (HTTPServerPipelineHandler queues
/// pipelined ones); keeps connections alive unless the client says otherwise.
final class TGIHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// TGI's default --payload-limit.
    static let maximumBodyBytes = 2_000_000

    private let state: TGIServerState
    private var pending = RequestAccumulator(maximumBodyBytes: TGIHTTPHandler.maximumBodyBytes)

    init(state: TGIServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            pending.begin(requestHead)
            if requestHead.headers.first(name: "expect")?.lowercased() == "100-continue",
                !state.hung.load(ordering: .acquiring)
            {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: requestHead.version, status: .continue))), promise: nil)
            }
        case .body(let chunk):
            pending.append(chunk)
        case .end:
            guard let (requestHead, body, bodyTooLarge) = pending.finish() else { return }
            let reply: TGIReply =
                bodyTooLarge
                ? .text(.payloadTooLarge, "Failed to buffer the request body: length limit exceeded")
                : TGIRoutes.reply(method: requestHead.method, uri: requestHead.uri, headers: requestHead.headers, body: body, state: state)
            write(reply, for: requestHead, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func write(_ reply: TGIReply, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let status = reply.status else { return }
        let keepAlive = request.isKeepAlive
        var headers = HTTPHeaders()
        if !keepAlive { headers.add(name: "connection", value: "close") }

        switch reply {
        case .full(_, let contentType, let bodyText, let extra):
            let bytes = ByteBuffer(string: bodyText)
            if let contentType { headers.add(name: "content-type", value: contentType) }
            for (name, value) in extra.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
            headers.add(name: "access-control-allow-origin", value: "*")
            headers.add(name: "vary", value: "origin, access-control-request-method, access-control-request-headers")
            headers.add(name: "content-length", value: String(bytes.readableBytes))
            headers.add(name: "date", value: Clock.httpDate())
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            if bytes.readableBytes > 0, request.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
            }
        case .eventStream(let events, let extra):
            // No content-length: NIO's encoder sends HTTP/1.1 chunked, one chunk per event.
            headers.add(name: "content-type", value: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            for (name, value) in extra.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
            headers.add(name: "access-control-allow-origin", value: "*")
            headers.add(name: "date", value: Clock.httpDate())
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            for event in events {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: event)))), promise: nil)
            }
        case .silence:
            return
        }

        let channel = context.channel
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
    }
}
