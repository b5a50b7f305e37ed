import NIOCore
import NIOHTTP1
import Synchronization

// vLLM's OpenAI-compatible HTTP surface, as FastAPI/uvicorn serve it: routes, the
// --api-key middleware (only paths under /v1, OPTIONS exempt), FastAPI's
// {"detail": ...} 404/405 bodies, vLLM's {"error": {...}} error bodies, JSON and SSE replies.

/// What the event loop reads and the lifecycle thread writes.
final class VLLMServerState: Sendable {
    let options: VLLMServeOptions
    let log: VLLMLog
    /// Model cards report the time the server started, as vLLM's do.
    let createdTime: Int
    let accessLog: Bool
    /// FAKE_HANG_AFTER fired: accept, read, never answer.
    let hung = Atomic<Bool>(false)
    /// The EngineCore died: /health 503, generation 500 (vLLM's EngineDeadError).
    let engineDead = Atomic<Bool>(false)

    init(options: VLLMServeOptions, log: VLLMLog) {
        self.options = options
        self.log = log
        self.createdTime = Clock.unixTime()
        self.accessLog = !options.nonDefaultArgs.contains { $0.key == "disable_uvicorn_access_log" && $0.pythonValue == "True" }
    }
}

/// A reply the handler writes.
enum VLLMReply: Equatable {
    /// A complete response; `contentType` nil means no body headers beyond content-length.
    case full(status: HTTPResponseStatus, contentType: String?, body: String, extraHeaders: [String: String] = [:])
    /// `text/event-stream`: each element is one `data: ...\n\n` event.
    case eventStream([String])
    /// Hung: say nothing.
    case silence

    static func json(_ status: HTTPResponseStatus, _ body: String, extraHeaders: [String: String] = [:]) -> VLLMReply {
        .full(status: status, contentType: "application/json", body: body, extraHeaders: extraHeaders)
    }

    var status: HTTPResponseStatus? {
        switch self {
        case .full(let status, _, _, _): status
        case .eventStream: .ok
        case .silence: nil
        }
    }
}

enum VLLMRoutes {
    struct Route {
        var path: String
        var methods: [String]
    }

    /// The routes served, in the order vLLM's launcher lists them.
    static let table: [Route] = [
        Route(path: "/health", methods: ["GET"]),
        Route(path: "/load", methods: ["GET"]),
        Route(path: "/ping", methods: ["GET", "POST"]),
        Route(path: "/version", methods: ["GET"]),
        Route(path: "/metrics", methods: ["GET"]),
        Route(path: "/v1/models", methods: ["GET"]),
        Route(path: "/v1/chat/completions", methods: ["POST"]),
        Route(path: "/v1/completions", methods: ["POST"]),
    ]

    /// vLLM's AuthenticationMiddleware guards these prefixes only; /health stays open.
    static let guardedPrefix = "/v1"

    /// Routes one complete request. Pure apart from reading `state` and the clock.
    static func reply(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: [UInt8], state: VLLMServerState) -> VLLMReply {
        if state.hung.load(ordering: .acquiring) { return .silence }
        let path = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")

        if !state.options.apiKeys.isEmpty, method != .OPTIONS, path.hasPrefix(guardedPrefix),
            !authorized(headers: headers, keys: state.options.apiKeys)
        {
            return .json(.unauthorized, #"{"error":"Unauthorized"}"#)
        }

        guard let route = table.first(where: { $0.path == path }) else {
            return .json(.notFound, #"{"detail":"Not Found"}"#)
        }
        guard route.methods.contains(method.rawValue) else {
            return .json(
                .methodNotAllowed, #"{"detail":"Method Not Allowed"}"#,
                extraHeaders: ["allow": route.methods.joined(separator: ", ")])
        }

        let engineDead = state.engineDead.load(ordering: .acquiring)
        switch path {
        case "/health", "/ping":
            return .full(status: engineDead ? .serviceUnavailable : .ok, contentType: nil, body: "")
        case "/load":
            return .json(.ok, #"{"server_load":0}"#)
        case "/version":
            return .json(.ok, #"{"version":"\#(VLLM.version)"}"#)
        case "/metrics":
            return .full(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: VLLMCompletions.metrics(state: state))
        case "/v1/models":
            return .json(.ok, VLLMCompletions.modelList(state: state))
        case "/v1/chat/completions":
            if engineDead { return VLLMCompletions.engineDeadReply }
            return VLLMCompletions.complete(body: body, chat: true, state: state)
        case "/v1/completions":
            if engineDead { return VLLMCompletions.engineDeadReply }
            return VLLMCompletions.complete(body: body, chat: false, state: state)
        default:
            return .json(.notFound, #"{"detail":"Not Found"}"#)
        }
    }

    /// `Authorization: Bearer <key>`, scheme case-insensitive, like vLLM's verify_token.
    static func authorized(headers: HTTPHeaders, keys: [String]) -> Bool {
        guard let value = headers.first(name: "authorization") else { return false }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        return keys.contains(String(parts[1]))
    }
}

/// Reads requests, answers them one at a time (HTTPServerPipelineHandler queues pipelined
/// ones), keeps connections alive unless the client says otherwise.
final class VLLMHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Larger bodies are refused; no chat request comes near it.
    static let maximumBodyBytes = 32 << 20

    private let state: VLLMServerState
    private var pending = RequestAccumulator(maximumBodyBytes: VLLMHTTPHandler.maximumBodyBytes)

    init(state: VLLMServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            pending.begin(requestHead)
            // uvicorn answers "Expect: 100-continue" so curl does not wait a second.
            if requestHead.headers.first(name: "expect")?.lowercased() == "100-continue",
                !state.hung.load(ordering: .acquiring)
            {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: requestHead.version, status: .continue))), promise: nil)
            }
        case .body(let chunk):
            pending.append(chunk)
        case .end:
            guard let (requestHead, body, bodyTooLarge) = pending.finish() else { return }
            let reply: VLLMReply =
                bodyTooLarge
                ? .json(.payloadTooLarge, #"{"detail":"Request body too large"}"#)
                : VLLMRoutes.reply(
                    method: requestHead.method, uri: requestHead.uri, headers: requestHead.headers,
                    body: body, state: state)
            write(reply, for: requestHead, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func write(_ reply: VLLMReply, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let status = reply.status else { return }
        let keepAlive = request.isKeepAlive
        var headers = HTTPHeaders()
        headers.add(name: "date", value: Clock.httpDate())
        headers.add(name: "server", value: "uvicorn")
        if !keepAlive { headers.add(name: "connection", value: "close") }

        switch reply {
        case .full(_, let contentType, let bodyText, let extraHeaders):
            let bytes = ByteBuffer(string: bodyText)
            headers.add(name: "content-length", value: String(bytes.readableBytes))
            if let contentType { headers.add(name: "content-type", value: contentType) }
            for (name, value) in extraHeaders.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            if bytes.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil) }
        case .eventStream(let events):
            // No content-length: NIO's encoder sends HTTP/1.1 chunked, one chunk per token.
            headers.add(name: "content-type", value: "text/event-stream; charset=utf-8")
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

        if state.accessLog {
            let peer = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
            let reason = status.reasonPhrase
            state.log.access(
                "\(peer) - \"\(request.method.rawValue) \(request.uri) HTTP/\(request.version.major).\(request.version.minor)\" \(status.code) \(reason)")
        }
    }
}
