import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The gateway's listener (docs/gateway.md): one OpenAI-compatible endpoint in front of
/// every server, on SwiftNIO's HTTP/1 pipeline. A port it cannot bind is one line in the
/// daemon's log; the daemon goes on supervising without a gateway.
struct GatewayServer: Service {
    let config: GatewayConfig
    let router: GatewayRouter
    let activity: GatewayActivity
    let demand: GatewayDemand
    let logger: Logger

    func run() async throws {
        let pools = UpstreamPools()
        let router = self.router
        let activity = self.activity
        let demand = self.demand
        let metrics = demand.registry.metrics
        let apiKey = config.apiKey
        let requestTimeout = config.requestTimeout
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let operations = channel.pipeline.syncOperations
                        // The headers written back are the engine's, already parsed, and the
                        // gateway's own: NIO's check of each outbound header is skipped.
                        try operations.configureHTTPServerPipeline(
                            withErrorHandling: true, withOutboundHeaderValidation: false)
                        try operations.addHandler(
                            GatewayHandler(
                                router: router, activity: activity, demand: demand, metrics: metrics,
                                pool: pools.pool(for: channel.eventLoop),
                                apiKey: apiKey, requestTimeout: requestTimeout))
                    }
                }
                .bind(host: config.host, port: config.port)
                .get()
        } catch {
            await demand.registry.gatewayFailed(config, error: "\(error)")
            logger.error(
                "gateway: cannot listen on \(config.address): \(error); set AGENTRON_GATEWAY=host:port (or off) for agentrond, and see `agentron doctor`"
            )
            return
        }
        await demand.registry.gatewayIsListening(config)
        logger.info(
            "gateway listening",
            metadata: ["address": "\(config.address)", "key": "\(config.apiKey == nil ? "none" : "required")"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        await demand.registry.gatewayIsListening(nil)
    }
}
