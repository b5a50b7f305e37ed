import NIOCore
import NIOHTTP1
import NIOPosix

// What the three modes (vllm, ollama, tgi) serve alike: the HTTP/1 server on an already
// bound socket, and the collection of one request's head and bounded body.

enum FakeHTTPServer {
    /// Serves HTTP/1.1 on `fd` (bound early, listening from now on), one fresh handler per
    /// connection, with TCP_NODELAY like uvicorn, Go and axum.
    static func serve(
        on fd: Int32, group: EventLoopGroup, handler: @escaping @Sendable () -> any ChannelHandler
    ) throws -> Channel {
        try ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
            .withBoundSocket(fd)
            .wait()
    }
}

/// One request's head and body as its parts arrive; a body over `maximumBodyBytes` is
/// dropped and flagged, so the route answers 413 as the real engine does.
struct RequestAccumulator {
    let maximumBodyBytes: Int
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false

    init(maximumBodyBytes: Int) { self.maximumBodyBytes = maximumBodyBytes }

    mutating func begin(_ requestHead: HTTPRequestHead) {
        head = requestHead
        body.removeAll(keepingCapacity: true)
        bodyTooLarge = false
    }

    mutating func append(_ chunk: ByteBuffer) {
        if body.count + chunk.readableBytes > maximumBodyBytes {
            bodyTooLarge = true
        } else {
            body.append(contentsOf: chunk.readableBytesView)
        }
    }

    /// The complete request at `.end`; nil when no head came first.
    mutating func finish() -> (head: HTTPRequestHead, body: [UInt8], tooLarge: Bool)? {
        guard let requestHead = head else { return nil }
        head = nil
        return (requestHead, body, bodyTooLarge)
    }
}
