import AgentronCore
import AgentronJSON
import NIOCore
import NIOHTTP1

// GatewayHandler's own answers and the headers it passes on or sets.
extension GatewayHandler {
    // MARK: Responses

    func refuse(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ json: String
    ) {
        state = .refused
        respond(context, head.version, false, status, json)
    }

    func respond(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, _ json: String,
        extraHeaders: [(String, String)] = []
    ) {
        respond(context, head.version, head.isKeepAlive, status, json, extraHeaders: extraHeaders)
    }

    func respond(
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
    static func addConnectionHeader(_ headers: inout HTTPHeaders, version: HTTPVersion, keepAlive: Bool) {
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "connection", value: "keep-alive")
        }
    }

    /// Headers that belong to one hop (RFC 9110 §7.6.1), the framing the encoder sets
    /// itself, and the credentials the gateway replaces.
    static let notForwarded = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "authorization",
    ]

    static func forwardable(_ headers: HTTPHeaders) -> HTTPHeaders {
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
