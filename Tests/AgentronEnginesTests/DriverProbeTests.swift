import AgentronCore
import AgentronHTTP
import Testing

@testable import AgentronEngines

/// Readiness and liveness against a real HTTP server on loopback (docs/engines.md, "ready
/// when" and "alive when"), and how each driver recognises its engine on a port.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct DriverProbeTests {
    static let timeout: Duration = .seconds(2)

    static func context(
        _ engine: EngineKind, port: Int, name: String = "srv", model: String = "org/m", env: [String: String] = [:]
    ) -> EngineContext {
        var profile = Profile(name: name, engine: engine, model: model, env: env)
        if engine == .command { profile.command = ["x", "{port}"] }
        return EngineContext(profile: profile, port: port, daemonEnvironment: [:])
    }

    static func models(_ ids: String...) -> StubServer.Reply {
        StubServer.Reply(
            status: 200,
            body: #"{"object":"list","data":["#
                + ids.map { #"{"id":"\#($0)","owned_by":"vllm"}"# }.joined(separator: ",") + "]}")
    }

    // MARK: vllm

    @Test func vllmIsReadyOnlyWhenHealthyAndServingTheName() async throws {
        let server = try StubServer(["/health": { _ in .init(status: 503, body: "") }])
        defer { server.stop() }
        let vllm = VLLMEngine()
        let context = Self.context(.vllm, port: server.port)
        #expect(await vllm.probeReadiness(context, timeout: Self.timeout) == .failed("/health: status 503"))

        server.route("/health", .init(status: 200, body: ""))
        server.route("/v1/models", Self.models("other"))
        #expect(
            await vllm.probeReadiness(context, timeout: Self.timeout)
                == .failed("/v1/models does not list \"srv\" (it lists: other)"))

        server.route("/v1/models", .init(status: 200, body: "not json"))
        #expect(await vllm.probeReadiness(context, timeout: Self.timeout) == .failed("/v1/models: not a model list"))

        server.route("/v1/models", Self.models("other", "srv"))
        #expect(
            await vllm.probeReadiness(context, timeout: Self.timeout)
                == .passed("/health 200, /v1/models lists \"srv\""))
        #expect(await vllm.probeLiveness(context, timeout: Self.timeout) == .passed("/health 200"))
    }

    /// A server started with VLLM_API_KEY answers 401 without it: the probe sends the key.
    @Test func vllmSendsTheKeyTheServerWants() async throws {
        let server = try StubServer([
            "/health": { _ in .init(status: 200, body: "") },
            "/v1/models": { request in
                request.headers["authorization"] == "Bearer sk-1"
                    ? DriverProbeTests.models("srv") : .init(status: 401, body: #"{"error":"Unauthorized"}"#)
            },
        ])
        defer { server.stop() }
        let vllm = VLLMEngine()
        #expect(
            await vllm.probeReadiness(Self.context(.vllm, port: server.port), timeout: Self.timeout)
                == .failed("/v1/models: status 401"))
        let keyed = Self.context(.vllm, port: server.port, env: ["VLLM_API_KEY": "sk-1"])
        #expect(await vllm.probeReadiness(keyed, timeout: Self.timeout).passed)
        var fromDaemon = Self.context(.vllm, port: server.port)
        fromDaemon.daemonEnvironment = ["VLLM_API_KEY": "sk-1"]
        #expect(
            await vllm.probeReadiness(fromDaemon, timeout: Self.timeout).passed, "the daemon's key reaches vLLM too")
        #expect(server.received.first { $0.path == "/health" }?.headers["authorization"] == nil, "/health needs no key")
    }

    @Test func aRefusedConnectionIsAFailedProbeWithItsReason() async throws {
        let port = try StubServer.closedPort()
        for kind in EngineKind.allCases {
            let context = Self.context(kind, port: port)
            let path = kind.driver.probePaths(context.profile).liveness
            #expect(
                await kind.driver.probeLiveness(context, timeout: Self.timeout)
                    == .failed("\(path): connection refused"), "\(kind)")
            #expect(await kind.driver.probeReadiness(context, timeout: Self.timeout).passed == false, "\(kind)")
        }
    }

    // MARK: ollama

    @Test func ollamaServesFirstAndIsReadyOnceTheModelIsLoaded() async throws {
        let server = try StubServer([
            "/": { _ in .init(status: 200, body: "Ollama is running", contentType: "text/plain") }
        ])
        defer { server.stop() }
        let ollama = OllamaEngine()
        let context = Self.context(.ollama, port: server.port, model: "Llama3.2")
        #expect(await ollama.probeServing(context, timeout: Self.timeout) == .passed("/ 200 (Ollama is running)"))
        #expect(await ollama.probeLiveness(context, timeout: Self.timeout) == .passed("/ 200"))

        server.route("/api/ps", .init(status: 200, body: #"{"models":null}"#))
        #expect(
            await ollama.probeReadiness(context, timeout: Self.timeout)
                == .failed("/api/ps does not list \"Llama3.2\" (loaded: none)"))
        // Ollama's own short name: `:latest` added, the default registry dropped, any case.
        server.route(
            "/api/ps", .init(status: 200, body: #"{"models":[{"name":"registry.ollama.ai/library/llama3.2:latest"}]}"#))
        #expect(await ollama.probeReadiness(context, timeout: Self.timeout) == .passed("/api/ps lists \"Llama3.2\""))
    }

    // MARK: tgi and command

    @Test func tgiIsReadyAndAliveOnHealth() async throws {
        let server = try StubServer(["/health": { _ in .init(status: 200, body: "") }])
        defer { server.stop() }
        let context = Self.context(.tgi, port: server.port)
        #expect(await TGIEngine().probeReadiness(context, timeout: Self.timeout) == .passed("/health 200"))
        server.route("/health", .init(status: 500, body: ""))
        #expect(await TGIEngine().probeLiveness(context, timeout: Self.timeout) == .failed("/health: status 500"))
    }

    /// llama-server answers 503 "Loading model" while it loads: not yet, with its words.
    @Test func commandProbesItsHealthPathForItsStatus() async throws {
        let server = try StubServer([
            "/health": { _ in .init(status: 503, body: #"{"error":{"code":503,"message":"Loading model"}}"#) },
            "/ready": { _ in .init(status: 204, body: "") },
        ])
        defer { server.stop() }
        var context = Self.context(.command, port: server.port)
        #expect(
            await CommandEngine().probeReadiness(context, timeout: Self.timeout)
                == .failed(#"/health: status 503, expected 200: {"error":{"code":503,"message":"Loading model"}}"#))
        context.profile.healthPath = "/ready"
        context.profile.healthStatus = 204
        #expect(await CommandEngine().probeLiveness(context, timeout: Self.timeout) == .passed("/ready 204"))
    }

    // MARK: Who answers on a port

    static func answers(_ server: StubServer) async throws -> ListenerAnswers {
        let root = try await HTTPClient.shared.execute(HTTPRequest(url: server.baseURL + "/", timeout: timeout))
        let models = try? await HTTPClient.shared.execute(
            HTTPRequest(url: server.baseURL + "/v1/models", timeout: timeout))
        return ListenerAnswers(
            baseURL: server.baseURL, root: root, models: models.flatMap { ListenerAnswers.modelCards(from: $0.body) })
    }

    static func recognised(_ server: StubServer) async throws -> [EngineKind: ListenerIdentity] {
        let answers = try await Self.answers(server)
        var found: [EngineKind: ListenerIdentity] = [:]
        for driver in Engines.all {
            if let identity = await driver.recognise(answers, timeout: timeout) { found[driver.kind] = identity }
        }
        return found
    }

    @Test func eachEngineKnowsItsOwnServer() async throws {
        let vllm = try StubServer([
            "/v1/models": { _ in DriverProbeTests.models("srv") },
            "/version": { _ in .init(status: 200, body: #"{"version":"0.11.0"}"#) },
        ])
        defer { vllm.stop() }
        #expect(try await Self.recognised(vllm) == [.vllm: ListenerIdentity(identified: "vllm", detail: "vLLM 0.11.0")])

        let ollama = try StubServer([
            "/": { _ in .init(status: 200, body: "Ollama is running", contentType: "text/plain") },
            "/api/version": { _ in .init(status: 200, body: #"{"version":"0.12.6"}"#) },
            "/v1/models": { _ in .init(status: 200, body: #"{"object":"list","data":[]}"#) },
        ])
        defer { ollama.stop() }
        #expect(
            try await Self.recognised(ollama) == [
                .ollama: ListenerIdentity(identified: "ollama", detail: "Ollama 0.12.6", models: [])
            ])

        let tgi = try StubServer([
            "/info": { _ in .init(status: 200, body: #"{"model_id":"org/m","version":"3.3.5"}"#) }
        ])
        defer { tgi.stop() }
        #expect(
            try await Self.recognised(tgi) == [
                .tgi: ListenerIdentity(identified: "tgi", detail: "TGI 3.3.5 serving org/m")
            ])

        let stranger = try StubServer(["/": { _ in .init(status: 200, body: "hello", contentType: "text/plain") }])
        defer { stranger.stop() }
        #expect(try await Self.recognised(stranger).isEmpty)
    }
}
