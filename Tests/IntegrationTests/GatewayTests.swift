import AgentronHTTP
import Foundation
import Testing

/// The gateway (docs/gateway.md) of a real agentrond, in front of FakeEngine vLLM servers:
/// routing by server name, alias and model id with `model` rewritten upstream, OpenAI's
/// error shapes, `/v1/models`, streams passed on as the engine writes them, the key on a
/// gateway that needs one, and a port it cannot take.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct GatewayTests {
    /// A daemon whose gateway listens on a free loopback port.
    static func start(_ harness: Harness, environment: [String: String] = [:]) async throws -> String {
        let port = try #require(Harness.freePort())
        try await harness.startDaemon(
            environment: ["AGENTRON_GATEWAY": "127.0.0.1:\(port)"].merging(environment) { $1 })
        let base = "http://127.0.0.1:\(port)"
        // The gateway binds right after the control socket.
        for _ in 0..<100 {
            // Any answer will do: a gateway with a key answers 401.
            if (try? await HTTPClient.shared.execute(HTTPRequest(url: base + "/health", timeout: .seconds(2)))) != nil {
                return base
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("the gateway did not answer on \(base): \(harness.daemonLog)")
    }

    /// A JSON POST, the way an OpenAI client sends one.
    static func jsonPost(
        _ url: String, _ body: String, headers: [(String, String)] = [], timeout: Duration = .seconds(10)
    ) -> HTTPRequest {
        HTTPRequest(
            method: "POST", url: url, headers: [("Content-Type", "application/json")] + headers.map { ($0, $1) },
            body: Array(body.utf8), timeout: timeout)
    }

    static func post(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> HTTPResponse {
        try await HTTPClient.shared.execute(jsonPost(url, body, headers: headers))
    }

    static func chat(_ model: String, stream: Bool = false) -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"hello gateway"}],"stream":\#(stream)}"#
    }

    /// Writes a profile into the harness's profile directory.
    static func profile(_ harness: Harness, _ name: String, _ yaml: String) throws {
        try harness.writeProfile(name, yaml)
    }

    @Test func routesByNameAliasAndModelIdAndRewritesTheModel() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        try Self.profile(
            harness, "qwen",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            aliases: [small, gpt-4o-mini]
            """)
        let up = try await harness.run(["up", "qwen"])
        #expect(up.code == 0, "up failed: \(up.stderr)")

        // The FakeEngine, like vLLM, answers 404 to any model name but the one it serves
        // ("qwen"): a 200 for every name proves the gateway rewrote it.
        for name in ["qwen", "small", "gpt-4o-mini", "Qwen/Qwen2.5-0.5B-Instruct"] {
            let response = try await Self.post(gateway + "/v1/chat/completions", Self.chat(name))
            #expect(response.status == 200, "\(name): \(response.bodyText)")
            #expect(response.bodyText.contains("hello gateway"), "\(name): \(response.bodyText)")
            #expect(
                response.bodyText.contains("\"model\":\"\(name.replacingOccurrences(of: "/", with: "\\/"))\"")
                    || response.bodyText.contains("\"model\":\"\(name)\""),
                "the response names the model as the client did: \(response.bodyText)")
        }
        let completion = try await Self.post(
            gateway + "/v1/completions", #"{"model":"small","prompt":"once upon","max_tokens":4}"#)
        #expect(completion.status == 200, "any POST under /v1/ with a model is routed: \(completion.bodyText)")

        let models = try await HTTPClient.shared.execute(HTTPRequest(url: gateway + "/v1/models", timeout: .seconds(5)))
        #expect(models.status == 200)
        let list = try harness.json(models.bodyText)
        #expect(list["object"] as? String == "list")
        let entries = try #require(list["data"] as? [[String: Any]])
        #expect(
            Set(entries.compactMap { $0["id"] as? String })
                == ["qwen", "small", "gpt-4o-mini", "Qwen/Qwen2.5-0.5B-Instruct"])
        #expect(entries.allSatisfy { $0["object"] as? String == "model" && $0["state"] as? String == "ready" })

        // providers.json: one entry for the gateway, with every name it routes.
        let providers = try harness.json(
            String(contentsOf: harness.home.appendingPathComponent("config/providers.json"), encoding: .utf8))
        let registered = try #require(providers["providers"] as? [[String: Any]])
        let entry = try #require(registered.first { $0["id"] as? String == "agentron" })
        #expect(entry["provider"] as? String == "openai")
        #expect(entry["baseUrl"] as? String == gateway + "/v1")
        #expect(entry["managedBy"] as? String == "agentron")
        #expect(
            Set(entry["models"] as? [String] ?? []) == ["qwen", "small", "gpt-4o-mini", "Qwen/Qwen2.5-0.5B-Instruct"])
        #expect(registered.contains { $0["id"] as? String == "qwen" }, "the server keeps its own entry")
        try ProviderSchema.expectValid(harness.home.appendingPathComponent("config/providers.json").path)

        // `agentron gateway`: the address, every route, and the counts of what was sent.
        let status = try await harness.run(["gateway", "--json"])
        #expect(status.code == 0, "\(status.stderr)")
        let counters = try harness.json(status.stdout)
        #expect(counters["address"] as? String == String(gateway.dropFirst("http://".count)))
        #expect(counters["listening"] as? Bool == true)
        #expect(counters["keyRequired"] as? Bool == false)
        let counts = try #require(counters["requests"] as? [[String: Any]])
        func answered(_ model: String) -> Int? {
            counts.first { $0["model"] as? String == model && $0["status"] as? Int == 200 }?["count"] as? Int
        }
        #expect(answered("small") == 2 && answered("qwen") == 1, "\(counts)")
        let routes = try #require(counters["routes"] as? [[String: Any]])
        #expect(routes.count == 1 && routes.first?["server"] as? String == "qwen")
        #expect(routes.first?["names"] as? [String] == ["qwen", "Qwen/Qwen2.5-0.5B-Instruct", "small", "gpt-4o-mini"])
        let text = try await harness.run(["gateway"])
        #expect(text.code == 0)
        #expect(text.stdout.contains("gateway   \(gateway)/v1 (no key)"), "\(text.stdout)")
        #expect(text.stdout.contains("0 in flight, 0 held"), "\(text.stdout)")
        #expect(text.stdout.contains("qwen    ready"), "\(text.stdout)")

        // Stopped by `down`: the next request starts it again, as `up` would.
        #expect(try await harness.run(["down", "qwen"]).code == 0)
        let again = try await Self.post(gateway + "/v1/chat/completions", Self.chat("small"))
        #expect(again.status == 200, "\(again.bodyText)")
        #expect(try await harness.servers().first?["state"] as? String == "ready")
    }

    @Test func refusalsUseOpenAIsErrorShape() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        for name in ["one", "two"] {
            try Self.profile(
                harness, name,
                """
                engine: vllm
                model: Qwen/Qwen2.5-0.5B-Instruct
                aliases: [shared]
                """)
            #expect(try await harness.run(["up", name]).code == 0)
        }

        func error(_ response: HTTPResponse) throws -> [String: Any] {
            try #require(try harness.json(response.bodyText)["error"] as? [String: Any])
        }
        let unknown = try await Self.post(gateway + "/v1/chat/completions", Self.chat("no-such-model"))
        #expect(unknown.status == 404)
        #expect(try error(unknown)["code"] as? String == "model_not_found")
        #expect(try error(unknown)["type"] as? String == "invalid_request_error")

        let ambiguous = try await Self.post(gateway + "/v1/chat/completions", Self.chat("shared"))
        #expect(ambiguous.status == 400)
        let message = try #require(try error(ambiguous)["message"] as? String)
        #expect(message.contains("one, two"), "names both servers: \(message)")
        // A server's own name is never ambiguous.
        #expect(try await Self.post(gateway + "/v1/chat/completions", Self.chat("two")).status == 200)

        let noModel = try await Self.post(gateway + "/v1/chat/completions", #"{"messages":[]}"#)
        #expect(noModel.status == 400)
        #expect(try error(noModel)["code"] as? String == "model_required")
        let notJSON = try await Self.post(gateway + "/v1/chat/completions", "model=qwen")
        #expect(notJSON.status == 400)
        #expect(try error(notJSON)["code"] as? String == "invalid_body")
        let wrongPath = try await HTTPClient.shared.execute(HTTPRequest(url: gateway + "/nope", timeout: .seconds(5)))
        #expect(wrongPath.status == 404)
        #expect(try error(wrongPath)["code"] as? String == "not_found")

        // A body over the limit is refused from its Content-Length, before it is read.
        let tooLarge = try await Self.rawExchange(
            gateway,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(1 << 30)\r\n\r\n{"
        )
        #expect(tooLarge.hasPrefix("HTTP/1.1 413"), "\(tooLarge.prefix(200))")
        #expect(tooLarge.contains("request_too_large"))

        #expect(harness.daemon?.isRunning == true, "no refusal hurts the daemon")
    }

    /// A stream through the gateway carries the same events as the engine's own, each as
    /// the engine wrote it.
    @Test func streamsPassThroughEventByEvent() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        #expect(
            try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"]).code == 0)
        let server = try #require(try await harness.servers().first)
        let endpoint = try #require(server["endpoint"] as? String)

        func events(_ url: String) async throws -> [String] {
            let response = try await HTTPClient.shared.stream(
                Self.jsonPost(url, Self.chat("qwen", stream: true)))
            #expect(response.status == 200)
            #expect(response.header("content-type")?.hasPrefix("text/event-stream") == true)
            var bytes: [UInt8] = []
            for try await chunk in response.body { bytes += chunk }
            // Ids and timestamps differ per request; everything else must be equal.
            return String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n\n").map {
                $0.replacingOccurrences(of: #""id":"[^"]*""#, with: "ID", options: .regularExpression)
                    .replacingOccurrences(of: #""created":[0-9]+"#, with: "CREATED", options: .regularExpression)
            }
        }
        let root = endpoint.hasSuffix("/v1") ? String(endpoint.dropLast(3)) : endpoint
        let direct = try await events(root + "/v1/chat/completions")
        let through = try await events(gateway + "/v1/chat/completions")
        #expect(direct.count > 2)
        #expect(through == direct)
        #expect(through.contains { $0.contains("[DONE]") })
    }

    /// `ttl`: a server idle that long is stopped, and says why; a stream that runs past the
    /// ttl is not cut, and the ttl counts from its end.
    @Test func anIdleServerStopsAfterItsTTLButNotDuringAStream() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        let up = try await harness.run([
            "up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen", "--ttl", "2s",
            "--env", "FAKE_TOKEN_SECONDS=0.3",
        ])
        #expect(up.code == 0, "\(up.stderr)")

        // 13 events 0.3 s apart: about 4 s of stream, twice the ttl.
        let started = Date()
        let stream = try await HTTPClient.shared.stream(
            Self.jsonPost(
                gateway + "/v1/chat/completions",
                #"{"model":"qwen","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight nine ten eleven"}]}"#,
                timeout: .seconds(30)))
        var text = ""
        for try await chunk in stream.body { text += String(decoding: chunk, as: UTF8.self) }
        #expect(Date().timeIntervalSince(started) > 3, "the stream outlived the ttl")
        #expect(text.contains("[DONE]"), "the stream ended whole: \(text.suffix(200))")
        let afterStream = try #require(try await harness.servers().first)
        #expect(afterStream["state"] as? String == "ready", "not stopped during the stream")
        #expect(afterStream["ttlSeconds"] as? Double == 2)
        #expect(afterStream["requestsInFlight"] == nil)
        #expect((afterStream["idleSeconds"] as? Double ?? 99) < 2)

        // Then idle: stopped about 2 s after the stream's end.
        var state: String?
        var reason: String?
        for _ in 0..<100 {
            let server = try await harness.servers(all: true).first
            state = server?["state"] as? String
            reason = server?["reason"] as? String
            if state == "stopped" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(state == "stopped")
        #expect(reason?.contains("without a request (ttl)") == true, "\(reason ?? "no reason")")
        #expect(Date().timeIntervalSince(started) > 5, "counted from the stream's end")
    }

    /// A request for a profile with no server starts it, exactly as `up` would; 50 such
    /// requests at once make one start and are all answered; `/v1/models` lists the profile
    /// before it ever ran.
    @Test func coldRequestsJoinOneStartAndAreAllAnswered() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        try Self.profile(
            harness, "qwen",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            aliases: [small]
            env:
              FAKE_LOAD_SECONDS: "1"
            """)
        let models = try await HTTPClient.shared.execute(HTTPRequest(url: gateway + "/v1/models", timeout: .seconds(5)))
        let listed = try #require(try harness.json(models.bodyText)["data"] as? [[String: Any]])
        #expect(listed.contains { $0["id"] as? String == "small" && $0["state"] as? String == "stopped" })

        let results = try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await HTTPClient.shared.execute(
                        Self.jsonPost(gateway + "/v1/chat/completions", Self.chat("small"), timeout: .seconds(60)))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 50)
        #expect(results.allSatisfy { $0.status == 200 }, "\(results.filter { $0.status != 200 }.first?.bodyText ?? "")")
        let log = try String(
            contentsOf: harness.logDirectory.appendingPathComponent("qwen.log"), encoding: .utf8)
        #expect(log.components(separatedBy: "vLLM API server version").count - 1 == 1, "one engine started")
        #expect(try await harness.servers().first?["state"] as? String == "ready")

        let metrics = try await HTTPClient.shared.execute(HTTPRequest(url: gateway + "/metrics", timeout: .seconds(5)))
        #expect(metrics.status == 200)
        #expect(metrics.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = metrics.bodyText
        #expect(text.contains(#"agentron_gateway_requests_total{model="small",status="200"} 50"#), "\(text)")
        #expect(text.contains(#"agentron_gateway_starts_total{model="small",outcome="ready"} 1"#), "\(text)")
        #expect(text.contains("agentron_gateway_requests_held 0"))
        #expect(text.contains("agentron_gateway_start_duration_seconds_count 1"))
        #expect(text.contains("agentron_gateway_upstream_seconds_count 50"))
    }

    /// A streaming request held while its server loads gets its 200 at once and SSE
    /// comments until the engine's events follow.
    @Test func aHeldStreamHearsLoadingCommentsThenTheEvents() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        try Self.profile(
            harness, "slow",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            env:
              FAKE_LOAD_SECONDS: "6"
            """)
        let response = try await HTTPClient.shared.stream(
            Self.jsonPost(gateway + "/v1/chat/completions", Self.chat("slow", stream: true), timeout: .seconds(60)))
        #expect(response.status == 200)
        var text = ""
        for try await chunk in response.body { text += String(decoding: chunk, as: UTF8.self) }
        #expect(text.hasPrefix(": loading slow ("), "\(text.prefix(200))")
        #expect(text.contains("hello"), "the engine's events follow")
        #expect(text.hasSuffix("data: [DONE]\n\n"))
    }

    /// A start that fails answers every held request at once with the reason `up` prints.
    @Test func aFailedStartAnswersEveryHeldRequest() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        try Self.profile(
            harness, "broken",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            env:
              FAKE_LOAD_SECONDS: "1"
              FAKE_EXIT_AT_START: bad-model
            """)
        let started = Date()
        let results = try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    try await Self.post(gateway + "/v1/chat/completions", Self.chat("broken"))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 503 })
        let message = try #require(
            (try harness.json(results[0].bodyText)["error"] as? [String: Any])?["message"] as? String)
        #expect(message.contains("the server broken did not start"), "\(message)")
        // The engine exits at once (FAKE_EXIT_AT_START): the answers come within about a
        // second of that, not after the startup timeout.
        #expect(Date().timeIntervalSince(started) < 3, "answered when the start failed, not after a timeout")
        // The hold queue is empty again: the next request starts it anew (and fails again).
        #expect(try await Self.post(gateway + "/v1/chat/completions", Self.chat("broken")).status == 503)
    }

    /// At most 64 requests wait for one model; more get 503 with Retry-After. A client that
    /// gives up while held leaves the queue.
    @Test func theHeldQueueIsCappedAndClientsThatLeaveAreDropped() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        try Self.profile(
            harness, "slow",
            """
            engine: vllm
            model: Qwen/Qwen2.5-0.5B-Instruct
            env:
              FAKE_LOAD_SECONDS: "5"
            """)
        // 64 clients that give up after 2 s fill the queue.
        let impatient = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        let response = try? await HTTPClient.shared.execute(
                            Self.jsonPost(gateway + "/v1/chat/completions", Self.chat("slow"), timeout: .seconds(2)))
                        return response?.status ?? 0
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
        }
        try await Task.sleep(for: .milliseconds(1000))
        let full = try await Self.post(gateway + "/v1/chat/completions", Self.chat("slow"))
        #expect(full.status == 503, "\(full.bodyText)")
        #expect(full.header("retry-after") == "5")
        #expect(full.bodyText.contains("model_busy"))
        let gaveUp = try await impatient.value
        #expect(gaveUp.allSatisfy { $0 == 0 }, "they gave up before the load ended")
        // Their places are free again: this one is held, and answered once the engine is up.
        let patient = try await HTTPClient.shared.execute(
            Self.jsonPost(gateway + "/v1/chat/completions", Self.chat("slow"), timeout: .seconds(30)))
        #expect(patient.status == 200, "\(patient.bodyText)")
    }

    /// A client that goes away mid-stream closes the engine's connection: the engine stops
    /// generating (its stream never completes, so uvicorn logs no 200 for it), and the
    /// request no longer counts as in flight.
    @Test func aClientThatLeavesMidStreamCancelsTheEnginesRequest() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        let up = try await harness.run([
            "up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen", "--env", "FAKE_TOKEN_SECONDS=0.4",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let log = harness.logDirectory.appendingPathComponent("qwen.log")
        func completedStreams() throws -> Int {
            try String(contentsOf: log, encoding: .utf8).components(
                separatedBy: "\"POST /v1/chat/completions HTTP/1.1\" 200"
            ).count - 1
        }
        #expect(try completedStreams() == 0)

        // Ten events 0.4 s apart; the client leaves after the first.
        let body = #"{"model":"qwen","stream":true,"messages":[{"role":"user","content":"a b c d e f g h"}]}"#
        let reader = Task {
            let response = try await HTTPClient.shared.stream(
                Self.jsonPost(gateway + "/v1/chat/completions", body, timeout: .seconds(30)))
            for try await _ in response.body { break }
        }
        try await reader.value
        try await Task.sleep(for: .seconds(5))
        #expect(try completedStreams() == 0, "the engine's stream was cut when the client left")

        // The same request read to its end completes upstream.
        let whole = try await HTTPClient.shared.stream(
            Self.jsonPost(gateway + "/v1/chat/completions", body, timeout: .seconds(30)))
        for try await _ in whole.body {}
        try await Task.sleep(for: .milliseconds(300))
        #expect(try completedStreams() == 1)
    }

    /// `group:`: a request for one member stops the other once its stream has finished,
    /// and starts only when the other is gone.
    @Test func groupMembersAreExclusive() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness)
        for name in ["alpha", "beta"] {
            try Self.profile(
                harness, name,
                """
                engine: vllm
                model: Qwen/Qwen2.5-0.5B-Instruct
                group: gpu0
                env:
                  FAKE_TOKEN_SECONDS: "0.3"
                """)
        }
        #expect(try await Self.post(gateway + "/v1/chat/completions", Self.chat("alpha")).status == 200)

        // A stream to alpha (about 1 s), and while it runs a request for beta.
        let stream = Task {
            let response = try await HTTPClient.shared.stream(
                Self.jsonPost(gateway + "/v1/chat/completions", Self.chat("alpha", stream: true), timeout: .seconds(30))
            )
            var text = ""
            for try await chunk in response.body { text += String(decoding: chunk, as: UTF8.self) }
            return text
        }
        try await Task.sleep(for: .milliseconds(300))
        let during = try #require(try await harness.servers().first { $0["name"] as? String == "alpha" })
        #expect(during["requestsInFlight"] as? Int == 1, "ps shows the stream in flight")
        let beta = try await Self.post(gateway + "/v1/chat/completions", Self.chat("beta"))
        #expect(beta.status == 200, "\(beta.bodyText)")
        let text = try await stream.value
        #expect(text.hasSuffix("data: [DONE]\n\n"), "alpha's stream finished before alpha stopped")

        let servers = try await harness.servers(all: true)
        let alpha = try #require(servers.first { $0["name"] as? String == "alpha" })
        #expect(alpha["state"] as? String == "stopped")
        #expect(alpha["reason"] as? String == "stopped for beta (group gpu0)")
        #expect(servers.first { $0["name"] as? String == "beta" }?["state"] as? String == "ready")
    }

    @Test func aGatewayWithAKeyRefusesRequestsWithoutIt() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await Self.start(harness, environment: ["AGENTRON_GATEWAY_API_KEY": "sesame"])
        #expect(
            try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"]).code == 0)
        let without = try await Self.post(gateway + "/v1/chat/completions", Self.chat("qwen"))
        #expect(without.status == 401)
        let wrong = try await Self.post(
            gateway + "/v1/chat/completions", Self.chat("qwen"), headers: [("Authorization", "Bearer sesamf")])
        #expect(wrong.status == 401)
        let right = try await Self.post(
            gateway + "/v1/chat/completions", Self.chat("qwen"), headers: [("Authorization", "Bearer sesame")])
        #expect(right.status == 200, "\(right.bodyText)")
    }

    /// Any address but loopback without a key: agentrond refuses to start, in one line.
    @Test func aNetworkAddressWithoutAKeyIsRefused() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        await #expect(throws: (any Error).self) {
            try await harness.startDaemon(environment: ["AGENTRON_GATEWAY": "0.0.0.0:\(Harness.freePort() ?? 1)"])
        }
        #expect(harness.daemonLog.contains("AGENTRON_GATEWAY_API_KEY"), "\(harness.daemonLog)")
    }

    /// A port someone else holds: one line in the log, and the daemon supervises as ever.
    @Test func aTakenPortLeavesTheDaemonRunning() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let holder = try #require(Harness.freePort())
        let listener = try #require(TCPListener(port: holder))
        defer { listener.close() }
        try await harness.startDaemon(environment: ["AGENTRON_GATEWAY": "127.0.0.1:\(holder)"])
        let up = try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"])
        #expect(up.code == 0, "\(up.stderr)")
        #expect(harness.daemonLog.contains("gateway: cannot listen on 127.0.0.1:\(holder)"), "\(harness.daemonLog)")
        #expect(harness.daemon?.isRunning == true)
    }

    /// Sends raw bytes and reads what comes back until the gateway closes or 5 s pass.
    static func rawExchange(_ base: String, _ request: String) async throws -> String {
        let port = try #require(Int(base.split(separator: ":").last ?? ""))
        return try await Task.detached {
            let client = try TCPConnection(port: port)
            defer { client.close() }
            client.send(request)
            return client.receive(for: .seconds(5)).text
        }.value
    }
}
