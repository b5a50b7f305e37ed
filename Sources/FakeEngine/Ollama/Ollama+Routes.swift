import NIOHTTP1

// Ollama's HTTP surface as gin serves it (server/routes.go): "Ollama is running" on /, the
// native /api/* routes with {"error": "..."} bodies, pulls streamed as NDJSON, and the
// OpenAI compatibility routes with OpenAI's error shape. A request that needs the model
// in memory waits for its load.

enum OllamaRoutes {
    /// Paths gin knows, with their methods: another method is 405, another path 404.
    static let table: [String: [String]] = [
        "/": ["GET", "HEAD"], "/api/version": ["GET", "HEAD"], "/api/ps": ["GET"], "/api/pull": ["POST"],
        "/api/generate": ["POST"],
        "/api/show": ["POST"], "/api/embed": ["POST"], "/v1/models": ["GET"], "/v1/chat/completions": ["POST"],
    ]
    static let greeting = "Hello! This is a fake Ollama engine."
    /// Ollama reports pull progress every 60 ms (blobDownload.Wait's ticker).
    static let pullTick = 0.06
    /// The registry round trip before an unknown model's "file does not exist".
    static let manifestLookupDelay = 0.1
    /// FAKE_PULL_SPLIT: the gap between a line's two halves, long enough for the client to
    /// read them separately.
    static let splitGap = 0.01

    static func reply(_ request: Request, state: OllamaState) -> Reply {
        let path = request.path
        guard let methods = table[path] else {
            return .full(.notFound, contentType: "text/plain", body: "404 page not found")
        }
        guard methods.contains(request.method.rawValue) else {
            return .full(.methodNotAllowed, contentType: "text/plain", body: "405 method not allowed")
        }
        let openAI = path.hasPrefix("/v1/")
        switch path {
        case "/": return .full(.ok, contentType: "text/plain; charset=utf-8", body: "Ollama is running")
        case "/api/version": return json(["version": .string(Ollama.version)])
        case "/api/ps": return ps(state)
        case "/v1/models": return models(state)
        default: break
        }
        guard !request.body.isEmpty else { return error(.badRequest, "missing request body", openAI: openAI) }
        guard let body = request.json, body.isObject else {
            return error(.badRequest, "invalid character looking for beginning of value", openAI: openAI)
        }
        switch path {
        case "/api/pull": return pull(body, state: state)
        case "/api/generate": return generate(body, state: state)
        case "/api/show": return show(body, state: state)
        case "/api/embed": return embed(body, state: state)
        default: return chat(body, state: state)
        }
    }

    static func json(_ value: JSON, _ status: HTTPResponseStatus = .ok) -> Reply {
        .json(status, value, type: "application/json; charset=utf-8")
    }

    /// Ollama's `{"error": "..."}`, or the OpenAI compatibility layer's (openai.NewError).
    static func error(_ status: HTTPResponseStatus, _ message: String, openAI: Bool = false) -> Reply {
        guard openAI else { return json(["error": .string(message)], status) }
        let type: JSON =
            status == .badRequest ? "invalid_request_error" : status == .notFound ? "not_found_error" : "api_error"
        return json(["error": ["message": .string(message), "type": type, "param": nil, "code": nil]], status)
    }

    static func line(_ value: JSON) -> Chunk { Chunk(text: value.text + "\n") }

    // MARK: Listings

    static func ps(_ state: OllamaState) -> Reply {
        let loaded = state.store.withLock { Array($0.loaded.values) }.sorted { $0.model.name.key < $1.model.name.key }
        let entries = loaded.map { entry -> JSON in
            let name = JSON.string(entry.model.name.shortName)
            return [
                "name": name, "model": name, "size": .int(entry.model.size), "digest": .string(entry.model.digest),
                "details": entry.model.details, "expires_at": .string(entry.expiresAt), "size_vram": 0,
                "context_length": 4096,
            ]
        }
        return json(["models": .array(entries)])
    }

    /// openai.ToListCompletion: `data` is Go's nil slice (null) when nothing is pulled.
    static func models(_ state: OllamaState) -> Reply {
        let pulled = state.store.withLock { Array($0.pulled.values) }.sorted { $0.name.key < $1.name.key }
        let cards = pulled.map { model -> JSON in
            [
                "id": .string(model.name.shortName), "object": "model", "created": .int(model.modifiedAt),
                "owned_by": .string(model.name.namespace),
            ]
        }
        return json(["object": "list", "data": cards.isEmpty ? nil : .array(cards)])
    }

    // MARK: Pull

    /// "pulling manifest", each layer's progress, "verifying sha256 digest", "writing
    /// manifest", "success". A failure answers 200 and then an error line, as Ollama does
    /// once the stream has begun.
    static func pull(_ body: JSON, state: OllamaState) -> Reply {
        let requested = body["model"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? body["name"]?.string ?? ""
        guard let name = OllamaName(requested) else { return error(.badRequest, "invalid model name") }
        let knobs = state.knobs
        let cached = state.pulled(name)
        let model = cached ?? OllamaModel(name)
        var chunks = [line(["status": "pulling manifest"])]
        if knobs.registryUnreachable {
            // PullModel asks the registry for the manifest first, for a model it has too; the
            // transport error is Go's url.Error for a name that does not resolve.
            let url = "https://\(name.host)/v2/\(name.namespace)/\(name.model)/manifests/\(name.tag)"
            let failure = "Get \"\(url)\": dial tcp: lookup \(name.host): no such host"
            Ollama.log("INFO", "images.go:1015", "request failed: \(failure)")
            chunks.append(
                Chunk(
                    delay: manifestLookupDelay, text: line(["error": .string("pull model manifest: \(failure)")]).text))
        } else if knobs.pullUnknown.contains(where: { $0 == requested || OllamaName($0)?.key == name.key }) {
            chunks.append(
                Chunk(
                    delay: manifestLookupDelay, text: line(["error": "pull model manifest: file does not exist"]).text))
        } else {
            for (index, layer) in model.layers.enumerated() {
                let status = JSON.string("pulling " + layer.digest.dropFirst(7).prefix(12))
                func progress(_ completed: Int) -> Chunk {
                    line([
                        "status": status, "digest": .string(layer.digest), "total": .int(layer.size),
                        "completed": .int(completed),
                    ])
                }
                // A blob already on disk, or a small one: done at once.
                guard cached == nil, index == 0 else {
                    chunks.append(progress(layer.size))
                    continue
                }
                let ticks = max(1, min(1000, Int((knobs.pullSeconds / pullTick).rounded())))
                chunks.append(progress(0))
                for tick in 1...ticks {
                    var next = progress(Int(Double(layer.size) * Double(tick) / Double(ticks)))
                    next.delay = knobs.pullSeconds / Double(ticks)
                    chunks.append(next)
                }
            }
            chunks += [
                line(["status": "verifying sha256 digest"]), line(["status": "writing manifest"]),
                line(["status": "success"]),
            ]
            chunks[chunks.count - 2].action = { state.markPulled(model) }
        }
        guard knobs.pullSplit else { return .stream(contentType: "application/x-ndjson", chunks: chunks) }
        // Each line as two chunks, cut in the middle of the JSON.
        let halves = chunks.flatMap { chunk -> [Chunk] in
            let cut = chunk.text.index(chunk.text.startIndex, offsetBy: chunk.text.count / 2)
            return [
                Chunk(delay: chunk.delay, text: String(chunk.text[..<cut]), action: chunk.action),
                Chunk(delay: splitGap, text: String(chunk.text[cut...])),
            ]
        }
        return .stream(contentType: "application/x-ndjson", chunks: halves)
    }

    // MARK: Models in memory

    /// The model a request names, pulled; or the error Ollama answers.
    static func resolve(_ body: JSON, state: OllamaState, openAI: Bool = false) -> Result<OllamaModel, Failure> {
        let requested = body["model"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? body["name"]?.string ?? ""
        guard !requested.isEmpty else {
            return .failure(Failure(reply: error(.badRequest, "model is required", openAI: openAI)))
        }
        guard let name = OllamaName(requested) else {
            return .failure(Failure(reply: error(.badRequest, "invalid model name", openAI: openAI)))
        }
        guard let model = state.pulled(name) else {
            return .failure(Failure(reply: error(.notFound, "model '\(requested)' not found", openAI: openAI)))
        }
        return .success(model)
    }

    struct Failure: Error { var reply: Reply }

    /// Runs `answer` once the model is in memory: at once when it is loaded, after the load
    /// time otherwise. keep_alive comes from the request, else OLLAMA_KEEP_ALIVE.
    static func afterLoad(
        _ model: OllamaModel, _ body: JSON, state: OllamaState, _ answer: @escaping @Sendable () -> Reply
    ) -> Reply {
        let keepAlive: Double
        switch KeepAlive.fromRequest(body["keep_alive"]) {
        case .success(let seconds): keepAlive = seconds ?? state.defaultKeepAlive
        case .failure(let failure): return error(.badRequest, failure.message)
        }
        let started = Clock.now()
        let wait = state.beginLoad(model, keepAlive: keepAlive)
        return .later(wait) {
            state.finishLoad(model, keepAlive: keepAlive)
            if wait > 0 {
                Ollama.log(
                    "INFO", "server.go:1289",
                    "llama runner started in \(Double(Int((Clock.now() - started) * 100)) / 100) seconds")
            }
            return answer()
        }
    }

    /// /api/generate: no prompt loads the model (`done_reason: load`); a prompt gets an echo.
    /// An embedding model lacks CapabilityCompletion: 400 before anything loads.
    static func generate(_ body: JSON, state: OllamaState) -> Reply {
        let model: OllamaModel
        switch resolve(body, state: state) {
        case .success(let found): model = found
        case .failure(let failure): return failure.reply
        }
        let requested = JSON.string(body["model"]?.string ?? "")
        if state.isEmbedding(model.name) { return error(.badRequest, "\(requested.text) does not support generate") }
        let prompt = body["prompt"]?.string ?? ""
        return afterLoad(model, body, state: state) {
            let (tokens, _) = Completion.tokens(
                prompt, maxTokens: body["options"]?["num_predict"]?.int, greeting: greeting)
            let created = JSON.string(Clock.wall("%Y-%m-%dT%H:%M:%S", digits: 9) + "Z")
            let done: JSON = prompt.isEmpty ? "load" : "stop"
            return json([
                "model": requested, "created_at": created, "response": .string(prompt.isEmpty ? "" : tokens.joined()),
                "done": true, "done_reason": done,
            ])
        }
    }

    /// /api/show: details and, since 0.6.4, `capabilities`; 404 for a model not in the store.
    static func show(_ body: JSON, state: OllamaState) -> Reply {
        let model: OllamaModel
        switch resolve(body, state: state) {
        case .success(let found): model = found
        case .failure(let failure): return failure.reply
        }
        let embedding = state.isEmbedding(model.name)
        let architecture = embedding ? "nomic-bert" : model.family
        return json([
            "modelfile": .string("# Modelfile generated by \"ollama show\"\nFROM \(model.name.shortName)\n"),
            "parameters": "",
            "template": "{{ .Prompt }}", "details": model.details,
            "capabilities": [embedding ? "embedding" : "completion"],
            "model_info": [
                "general.architecture": .string(architecture),
                "\(architecture).context_length": embedding ? 2048 : 131072,
            ],
            "modified_at": .string(Clock.wall("%Y-%m-%dT%H:%M:%SZ", at: model.modifiedAt)),
        ])
    }

    /// /api/embed: the model loads (a runner starts) before the input is looked at, so no
    /// input loads it and answers `"embeddings":[]`; otherwise one small vector per input.
    static func embed(_ body: JSON, state: OllamaState) -> Reply {
        let model: OllamaModel
        switch resolve(body, state: state) {
        case .success(let found): model = found
        case .failure(let failure): return failure.reply
        }
        let inputs = body["input"]?.array?.compactMap(\.string) ?? body["input"]?.string.map { [$0] } ?? []
        let requested = JSON.string(body["model"]?.string ?? "")
        return afterLoad(model, body, state: state) {
            json(["model": requested, "embeddings": .array(inputs.map { _ in [0.25, -0.5, 0.125] })])
        }
    }

    /// /v1/chat/completions (openai.ChatMiddleware around the chat handler); keep_alive is
    /// not part of OpenAI's request, so OLLAMA_KEEP_ALIVE applies.
    static func chat(_ body: JSON, state: OllamaState) -> Reply {
        guard let completion = Completion(body, chat: true), !(body["messages"]?.array ?? []).isEmpty else {
            return error(.badRequest, "[] is too short - 'messages'", openAI: true)
        }
        let model: OllamaModel
        switch resolve(body, state: state, openAI: true) {
        case .success(let found): model = found
        case .failure(let failure): return failure.reply
        }
        let requested = completion.model ?? ""
        return afterLoad(model, [:], state: state) {
            completion.answer(
                model: requested, chat: true, greeting: greeting, sseType: "text/event-stream",
                extra: ["system_fingerprint": "fp_ollama"])
        }
    }
}
