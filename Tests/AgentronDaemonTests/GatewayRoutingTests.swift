import AgentronCore
import NIOCore
import NIOHTTP1
import Testing

@testable import AgentronDaemon

/// Where the gateway listens, and how a request's model finds its server (docs/gateway.md).
struct GatewayConfigTests {
    func resolve(_ flag: String? = nil, _ environment: [String: String] = [:]) -> Result<
        GatewayConfig?, GatewayConfigError
    > {
        GatewayConfig.resolve(flag: flag, environment: environment)
    }

    @Test func loopback8400UnlessToldOtherwise() throws {
        #expect(try resolve().get() == GatewayConfig(host: "127.0.0.1", port: 8400, apiKey: nil))
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": "off"]).get() == nil)
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": "OFF"]).get() == nil)
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": "127.0.0.1:9000"]).get()?.port == 9000)
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": ":9001"]).get()?.host == "127.0.0.1")
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": "[::1]:9002"]).get()?.host == "::1")
        #expect(try resolve(nil, ["AGENTRON_GATEWAY": "[::1]:9002"]).get()?.address == "[::1]:9002")
        #expect(try resolve("off", ["AGENTRON_GATEWAY": "127.0.0.1:9000"]).get() == nil, "the flag wins")
    }

    @Test(arguments: ["8400", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "host name:80", "a/b:80"])
    func unusableSettingsAreOneLine(setting: String) {
        guard case .failure(let error) = resolve(nil, ["AGENTRON_GATEWAY": setting]) else {
            Issue.record("\(setting) was taken")
            return
        }
        #expect(error.description.contains("host:port or off"), "\(error)")
    }

    @Test func aNetworkAddressNeedsAKey() throws {
        guard case .failure(let error) = resolve(nil, ["AGENTRON_GATEWAY": "0.0.0.0:8400"]) else {
            Issue.record("0.0.0.0 without a key was taken")
            return
        }
        #expect(error.description.contains("AGENTRON_GATEWAY_API_KEY"))
        let keyed = try resolve(nil, ["AGENTRON_GATEWAY": "0.0.0.0:8400", "AGENTRON_GATEWAY_API_KEY": "k"]).get()
        #expect(keyed?.apiKey == "k")
        #expect(try resolve(nil, ["AGENTRON_GATEWAY_API_KEY": ""]).get()?.apiKey == nil, "an empty key is no key")
    }

    @Test func theKeyIsComparedWhole() {
        var headers = HTTPHeaders()
        #expect(!GatewayHandler.isAuthorized(headers, key: "sesame"))
        headers.replaceOrAdd(name: "Authorization", value: "Bearer sesame")
        #expect(GatewayHandler.isAuthorized(headers, key: "sesame"))
        headers.replaceOrAdd(name: "Authorization", value: "bearer sesame")
        #expect(GatewayHandler.isAuthorized(headers, key: "sesame"))
        for wrong in ["Bearer sesam", "Bearer sesame2", "Basic sesame", "Bearer ", "sesame"] {
            headers.replaceOrAdd(name: "Authorization", value: wrong)
            #expect(!GatewayHandler.isAuthorized(headers, key: "sesame"), "\(wrong)")
        }
    }
}

struct GatewayRoutingTests {
    static func route(
        _ server: String, model: String = "Qwen/Qwen2.5-0.5B-Instruct", aliases: [String] = [],
        state: ServerState = .ready
    ) -> GatewayRoute {
        GatewayRoute(
            server: server, model: model, aliases: aliases, servedModel: server, host: "0.0.0.0", port: 8001,
            apiKey: nil, state: state, reason: nil)
    }

    @Test func aNameAnAliasOrTheModelReachesTheServer() {
        let routing = GatewayRouting(routes: [Self.route("qwen", aliases: ["small"]), Self.route("llama", model: "L")])
        #expect(routing.resolve("qwen") == .route(Self.route("qwen", aliases: ["small"])))
        #expect(routing.resolve("small") == .route(Self.route("qwen", aliases: ["small"])))
        #expect(routing.resolve("Qwen/Qwen2.5-0.5B-Instruct") == .route(Self.route("qwen", aliases: ["small"])))
        #expect(routing.resolve("L") == .route(Self.route("llama", model: "L")))
        #expect(routing.resolve("qwen ") == .unknown, "names are exact")
        #expect(routing.resolve("") == .unknown)
    }

    @Test func aSharedNameMeansTheOneServerThatIsUpOrIsAmbiguous() {
        let both = GatewayRouting(routes: [Self.route("b", aliases: ["x"]), Self.route("a", aliases: ["x"])])
        #expect(both.resolve("x") == .ambiguous(["a", "b"]))
        #expect(both.resolve("Qwen/Qwen2.5-0.5B-Instruct") == .ambiguous(["a", "b"]))
        let oneUp = GatewayRouting(routes: [Self.route("a", state: .stopped), Self.route("b", state: .starting)])
        #expect(oneUp.resolve("Qwen/Qwen2.5-0.5B-Instruct") == .route(Self.route("b", state: .starting)))
    }

    @Test func aServersNameWinsOverAnotherServersAlias() {
        let routing = GatewayRouting(routes: [Self.route("a", aliases: ["b"]), Self.route("b")])
        #expect(routing.resolve("b") == .route(Self.route("b")))
    }

    @Test func enginesOnEveryAddressAreReachedOnLoopback() {
        #expect(GatewayRoute.connectHost(for: "0.0.0.0") == "127.0.0.1")
        #expect(GatewayRoute.connectHost(for: "::") == "::1")
        #expect(GatewayRoute.connectHost(for: "10.0.0.5") == "10.0.0.5")
    }

    @Test func modelsAndErrorsInOpenAIsShape() {
        let routing = GatewayRouting(routes: [Self.route("q\"x", aliases: ["s"])])
        let models = GatewayJSON.models(routing)
        #expect(models.hasPrefix(#"{"object":"list","data":[{"id":"q\"x","object":"model""#))
        #expect(models.contains(#""id":"s""#) && models.contains(#""state":"ready""#))
        #expect(
            GatewayJSON.error("bad \"x\"", type: "invalid_request_error", code: "c", param: "model")
                == #"{"error":{"message":"bad \"x\"","type":"invalid_request_error","param":"model","code":"c"}}"#)
    }
}

/// The response's `model` goes back to the client's name for it, however the engine's
/// body is cut into chunks, and without holding back anything that cannot be the pattern.
struct ModelRewriterTests {
    static let body =
        #"data: {"id":"x","model":"qwen","choices":[]}"# + "\n\n" + #"data: {"model":"qwen-2","model":"qwen"}"#
        + "\n\n"
    static let expected =
        #"data: {"id":"x","model":"small","choices":[]}"# + "\n\n" + #"data: {"model":"qwen-2","model":"small"}"#
        + "\n\n"

    static func rewrite(_ text: String, cut: Int) throws -> String {
        let bytes = Array(text.utf8)
        var rewriter = try #require(ModelRewriter(served: "qwen", asked: "small"))
        var out = Array(rewriter.process(ByteBuffer(bytes: bytes[..<cut])).readableBytesView)
        out += rewriter.process(ByteBuffer(bytes: bytes[cut...])).readableBytesView
        out += rewriter.finish()
        return String(decoding: out, as: UTF8.self)
    }

    @Test func everyCutGivesTheSameBody() throws {
        for cut in 0...Self.body.utf8.count {
            #expect(try Self.rewrite(Self.body, cut: cut) == Self.expected, "cut at \(cut)")
        }
    }

    @Test func spacesAfterTheColonAreKept() throws {
        let body = #"{"model": "qwen", "x": {"model":  "qwen"}, "model": "qwen2"}"#
        let expected = #"{"model": "small", "x": {"model":  "small"}, "model": "qwen2"}"#
        for cut in 0...body.utf8.count {
            #expect(try Self.rewrite(body, cut: cut) == expected, "cut at \(cut)")
        }
    }

    @Test func onlyAPossibleStartOfThePatternIsHeldBack() throws {
        var rewriter = try #require(ModelRewriter(served: "qwen", asked: "small"))
        func text(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }
        let plain = ByteBuffer(string: "data: {\"a\":1}\n\n")
        let passed = rewriter.process(plain)
        #expect(text(passed) == "data: {\"a\":1}\n\n")
        #expect(passed.storageCapacity == plain.storageCapacity, "nothing to replace: the chunk itself goes on")
        #expect(text(rewriter.process(ByteBuffer(string: "{\"mod"))) == "{")
        #expect(text(rewriter.process(ByteBuffer(string: "el\": "))) == "")
        #expect(text(rewriter.process(ByteBuffer(string: "\"qwen\"}"))) == "\"model\": \"small\"}")
        #expect(rewriter.finish().isEmpty)
        #expect(text(rewriter.process(ByteBuffer(string: "{\"model\":\"qw"))) == "{")
        #expect(rewriter.finish() == Array("\"model\":\"qw".utf8), "a body that ends mid-pattern keeps its bytes")
        #expect(ModelRewriter(served: "qwen", asked: "qwen") == nil, "the served name: nothing to do")
    }
}

/// `/metrics` in Prometheus' text format.
struct GatewayMetricsTests {
    @Test func countersGaugesAndHistogramsRender() {
        let metrics = GatewayMetrics()
        metrics.request(model: "q\"x", status: 200)
        metrics.request(model: "q\"x", status: 200)
        metrics.request(model: "q\"x", status: 404)
        metrics.overhead(0.00003)
        metrics.overhead(0.002)
        metrics.start(model: "q\"x", outcome: "ready", seconds: 3)
        let text = metrics.render(inFlight: ["qwen": 2], held: 1)
        #expect(text.contains(#"agentron_gateway_requests_total{model="q\"x",status="200"} 2"#))
        #expect(text.contains(#"agentron_gateway_requests_total{model="q\"x",status="404"} 1"#))
        #expect(text.contains(#"agentron_gateway_requests_in_flight{server="qwen"} 2"#))
        #expect(text.contains("agentron_gateway_requests_held 1\n"))
        #expect(text.contains(#"agentron_gateway_overhead_seconds_bucket{le="5e-05"} 1"#))
        #expect(text.contains(#"agentron_gateway_overhead_seconds_bucket{le="0.0025"} 2"#))
        #expect(text.contains(#"agentron_gateway_overhead_seconds_bucket{le="+Inf"} 2"#))
        #expect(text.contains("agentron_gateway_overhead_seconds_count 2\n"))
        #expect(text.contains(#"agentron_gateway_start_duration_seconds_bucket{le="5.0"} 1"#))
        #expect(text.contains("# TYPE agentron_gateway_upstream_seconds histogram\n"))
        #expect(GatewayMetrics.label("a\\b\nc") == #""a\\b\nc""#)
    }
}
