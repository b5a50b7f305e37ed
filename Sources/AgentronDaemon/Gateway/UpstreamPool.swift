import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Keep-alive connections from the gateway to engines, one pool per event loop: a client's
/// connection and the engine connection serving it live on the same loop, so a request is
/// forwarded without a thread hop or a lock (docs/gateway.md, "Passthrough").
final class UpstreamPool: @unchecked Sendable {
    // @unchecked: every field is touched only on `eventLoop` (checked by assertInEventLoop).
    let eventLoop: any EventLoop
    private var idle: [String: [any Channel]] = [:]

    /// Idle connections kept per engine; more are closed when their exchange ends.
    static let maxIdlePerUpstream = 32
    /// An engine that accepts no connection in this long is reported as not answering.
    static let connectTimeout: TimeAmount = .seconds(5)

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// An idle connection to `host:port`, or a new one.
    func acquire(host: String, port: Int) -> EventLoopFuture<any Channel> {
        eventLoop.assertInEventLoop()
        let key = Self.key(host, port)
        while var list = idle[key], let channel = list.popLast() {
            idle[key] = list.isEmpty ? nil : list
            if channel.isActive { return eventLoop.makeSucceededFuture(channel) }
        }
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Headers go up as the client's parsed ones plus the gateway's own
                    // (the engine key is checked in `forward`): no second validation.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: host, port: port)
    }

    /// Takes back a connection whose exchange ended cleanly and that may be reused.
    func release(_ channel: any Channel, host: String, port: Int) {
        eventLoop.assertInEventLoop()
        let key = Self.key(host, port)
        guard channel.isActive, idle[key, default: []].count < Self.maxIdlePerUpstream else {
            channel.close(promise: nil)
            return
        }
        idle[key, default: []].append(channel)
    }

    private static func key(_ host: String, _ port: Int) -> String { "\(host):\(port)" }
}

/// One pool per event loop of the group.
final class UpstreamPools: Sendable {
    private let pools = Mutex([ObjectIdentifier: UpstreamPool]())

    func pool(for eventLoop: any EventLoop) -> UpstreamPool {
        pools.withLock { pools in
            let id = ObjectIdentifier(eventLoop)
            if let pool = pools[id] { return pool }
            let pool = UpstreamPool(eventLoop: eventLoop)
            pools[id] = pool
            return pool
        }
    }
}

/// What an engine connection reports to the exchange using it.
enum UpstreamEvent {
    case part(HTTPClientResponsePart)
    /// The engine's bytes read so far are all passed on: flush them to the client (one
    /// write for a response that arrived in one read, and no part waits for the next).
    case readComplete
    /// The connection closed (or failed) before the exchange ended.
    case closed
}

/// The last handler of an engine connection: hands every response part to the exchange
/// that holds the connection now.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// Where this connection's response parts go; nil while it sits in the pool.
    var sink: ((UpstreamEvent) -> Void)?
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes a request on this connection (on its event loop).
    func send(_ parts: [HTTPClientRequestPart]) {
        guard let context else { return }
        for part in parts { context.write(wrapOutboundOut(part), promise: nil) }
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sink?(.part(unwrapInboundIn(data)))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sink?(.readComplete)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let sink = self.sink
        self.sink = nil
        sink?(.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
