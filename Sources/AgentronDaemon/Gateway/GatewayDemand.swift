import NIOCore
import Synchronization

/// The gateway's cold path: requests for a model no server can take now are held here
/// while the registry starts its server (docs/gateway.md, "On demand"). Every held request
/// waits on the same start; at most `HeldRequests.maxPerModel` wait for one model at a time.
final class GatewayDemand: Sendable {
    let registry: ServerRegistry

    init(registry: ServerRegistry) {
        self.registry = registry
    }

    /// Counts a request as held for `model`.
    func hold(_ model: String) -> HeldRequests.Hold { registry.held.hold(model) }

    /// A held request was answered, or its client went away.
    func release(_ model: String) { registry.held.release(model) }

    /// Requests held for every model.
    var totalHeld: Int { registry.held.total }

    /// Starts what `model` names if needed and completes, on `eventLoop`, once it can take
    /// the request or cannot start.
    func demand(_ model: String, on eventLoop: any EventLoop) -> EventLoopFuture<GatewayDemandResult> {
        let promise = eventLoop.makePromise(of: GatewayDemandResult.self)
        let registry = self.registry
        promise.completeWithTask { await registry.demand(model) }
        return promise.futureResult
    }

    /// `GET /v1/models`, with the profiles on the search path (read off the event loop).
    func models(on eventLoop: any EventLoop) -> EventLoopFuture<String> {
        let promise = eventLoop.makePromise(of: String.self)
        let registry = self.registry
        promise.completeWithTask { await registry.gatewayModels() }
        return promise.futureResult
    }
}

/// How many requests wait for each model's server to start (owned by the registry, so the
/// control API's `agentron gateway` sees them too).
final class HeldRequests: Sendable {
    private let held = Mutex([String: Int]())

    /// Beyond this many requests waiting for one model, more get 503 with Retry-After: a
    /// client stampede must not pile up without bound while weights load.
    static let maxPerModel = 64

    enum Hold {
        /// The first request held for the model: the one whose wait is the start's.
        case first
        case joined
        /// The model has its fill of held requests.
        case full
    }

    func hold(_ model: String) -> Hold {
        held.withLock { held in
            let count = held[model, default: 0]
            guard count < Self.maxPerModel else { return .full }
            held[model] = count + 1
            return count == 0 ? .first : .joined
        }
    }

    func release(_ model: String) {
        held.withLock { held in
            let count = held[model, default: 0] - 1
            held[model] = count > 0 ? count : nil
        }
    }

    var total: Int {
        held.withLock { $0.values.reduce(0, +) }
    }
}
