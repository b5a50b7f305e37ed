import AgentronCore
import Synchronization

/// The gateway's counters, served as Prometheus text on `GET /metrics` (docs/gateway.md).
/// Each request takes the lock a couple of times, uncontended in practice.
final class GatewayMetrics: Sendable {
    /// Histogram buckets in seconds: the gateway's own time (tens of microseconds), an
    /// engine's first byte (milliseconds to seconds), a cold start (seconds to minutes).
    static let overheadBuckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01]
    static let upstreamBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60]
    static let startBuckets = [0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800]

    struct Histogram: Sendable {
        var bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(_ bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            for index in bounds.indices where value <= bounds[index] { counts[index] += 1 }
            sum += value
            count += 1
        }
    }

    private struct State: Sendable {
        var requests: [String: [Int: Int]] = [:]  // model → status → count
        var starts: [String: [String: Int]] = [:]  // model → outcome → count
        var overhead = Histogram(GatewayMetrics.overheadBuckets)
        var upstream = Histogram(GatewayMetrics.upstreamBuckets)
        var startDuration = Histogram(GatewayMetrics.startBuckets)
    }

    private let state = Mutex(State())

    func request(model: String, status: Int) {
        state.withLock { $0.requests[model, default: [:]][status, default: 0] += 1 }
    }

    /// From the request's last byte to the engine request written: what the gateway adds.
    func overhead(_ seconds: Double) {
        state.withLock { $0.overhead.observe(seconds) }
    }

    /// From the engine request written to the engine's response head.
    func upstream(_ seconds: Double) {
        state.withLock { $0.upstream.observe(seconds) }
    }

    /// A start the gateway waited for ended: the server is `ready`, or `failed`, after
    /// `seconds` (the first held request's wait).
    func start(model: String, outcome: String, seconds: Double) {
        state.withLock {
            $0.starts[model, default: [:]][outcome, default: 0] += 1
            $0.startDuration.observe(seconds)
        }
    }

    /// The counters as the control API reports them, sorted.
    func counts() -> (requests: [GatewayStatus.RequestCount], starts: [GatewayStatus.StartCount]) {
        let state = self.state.withLock { $0 }
        var requests: [GatewayStatus.RequestCount] = []
        for (model, byStatus) in state.requests {
            for (status, count) in byStatus { requests.append(.init(model: model, status: status, count: count)) }
        }
        var starts: [GatewayStatus.StartCount] = []
        for (model, byOutcome) in state.starts {
            for (outcome, count) in byOutcome { starts.append(.init(model: model, outcome: outcome, count: count)) }
        }
        requests.sort { ($0.model, $0.status) < ($1.model, $1.status) }
        starts.sort { ($0.model, $0.outcome) < ($1.model, $1.outcome) }
        return (requests, starts)
    }

    /// Prometheus' text format, version 0.0.4.
    func render(inFlight: [String: Int], held: Int) -> String {
        let state = self.state.withLock { $0 }
        var out = ""
        out += "# HELP agentron_gateway_requests_total Requests answered by the gateway, by model and HTTP status.\n"
        out += "# TYPE agentron_gateway_requests_total counter\n"
        for model in state.requests.keys.sorted() {
            for (status, count) in (state.requests[model] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out += "agentron_gateway_requests_total{model=\(Self.label(model)),status=\"\(status)\"} \(count)\n"
            }
        }
        out += "# HELP agentron_gateway_requests_in_flight Requests being forwarded, by server.\n"
        out += "# TYPE agentron_gateway_requests_in_flight gauge\n"
        for (server, count) in inFlight.sorted(by: { $0.key < $1.key }) {
            out += "agentron_gateway_requests_in_flight{server=\(Self.label(server))} \(count)\n"
        }
        out += "# HELP agentron_gateway_requests_held Requests waiting for their server to start.\n"
        out += "# TYPE agentron_gateway_requests_held gauge\n"
        out += "agentron_gateway_requests_held \(held)\n"
        out +=
            "# HELP agentron_gateway_starts_total Starts requests waited for, by model and outcome (ready, failed).\n"
        out += "# TYPE agentron_gateway_starts_total counter\n"
        for model in state.starts.keys.sorted() {
            for (outcome, count) in (state.starts[model] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out += "agentron_gateway_starts_total{model=\(Self.label(model)),outcome=\"\(outcome)\"} \(count)\n"
            }
        }
        out += Self.histogram(
            "agentron_gateway_start_duration_seconds", "How long held requests waited for their server.",
            state.startDuration)
        out += Self.histogram(
            "agentron_gateway_overhead_seconds", "From a request's last byte to the engine request written.",
            state.overhead)
        out += Self.histogram(
            "agentron_gateway_upstream_seconds", "From the engine request written to the engine's response head.",
            state.upstream)
        return out
    }

    private static func histogram(_ name: String, _ help: String, _ histogram: Histogram) -> String {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (bound, count) in zip(histogram.bounds, histogram.counts) {
            out += "\(name)_bucket{le=\"\(bound)\"} \(count)\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(histogram.count)\n"
        out += "\(name)_sum \(histogram.sum)\n\(name)_count \(histogram.count)\n"
        return out
    }

    /// A label value in quotes, with `\`, `"` and line breaks escaped.
    static func label(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}
