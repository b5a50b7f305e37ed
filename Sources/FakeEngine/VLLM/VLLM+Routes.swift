import NIOHTTP1

// vLLM's OpenAI-compatible HTTP surface as FastAPI and uvicorn serve it: the --api-key
// middleware (paths under /v1 only, OPTIONS exempt), FastAPI's {"detail": ...} 404 and
// 405 bodies, vLLM's {"error": {...}} error bodies, JSON and SSE replies.

enum VLLMRoutes {
    /// The routes served, in the order vLLM's launcher lists them.
    static let table: [(path: String, methods: [String])] = [
        ("/health", ["GET"]), ("/version", ["GET"]), ("/v1/models", ["GET"]),
        ("/v1/chat/completions", ["POST"]), ("/v1/completions", ["POST"]),
    ]
    static let greeting = "Hello! This is a fake vLLM engine."

    static func reply(_ request: Request, options: VLLMOptions, engineDead: Bool, tokenSeconds: Double = 0) -> Reply {
        let path = request.path
        if !options.apiKeys.isEmpty, request.method != .OPTIONS, path.hasPrefix("/v1"),
            !authorized(request, keys: options.apiKeys)
        {
            return .json(.unauthorized, ["error": "Unauthorized"])
        }
        guard let route = table.first(where: { $0.path == path }) else {
            return .json(.notFound, ["detail": "Not Found"])
        }
        guard route.methods.contains(request.method.rawValue) else {
            return .json(
                .methodNotAllowed, ["detail": "Method Not Allowed"],
                headers: [("allow", route.methods.joined(separator: ", "))])
        }
        switch path {
        case "/health":
            return .empty(engineDead ? .serviceUnavailable : .ok)
        case "/version":
            return .json(.ok, ["version": .string(VLLMArguments.version)])
        case "/v1/models":
            let cards = options.servedNames.map { name -> JSON in
                [
                    "id": .string(name), "object": "model", "created": .int(Clock.unixTime()), "owned_by": "vllm",
                    "root": .string(options.model), "parent": nil, "max_model_len": .int(options.maxModelLen),
                    "permission": [],
                ]
            }
            return .json(.ok, ["object": "list", "data": .array(cards)])
        default:
            return complete(
                request, chat: path == "/v1/chat/completions", options: options, engineDead: engineDead,
                tokenSeconds: tokenSeconds)
        }
    }

    static func complete(
        _ request: Request, chat: Bool, options: VLLMOptions, engineDead: Bool, tokenSeconds: Double = 0
    ) -> Reply {
        if engineDead {
            return error(
                .internalServerError, "EngineCore encountered an issue. See stack trace (above) for the root cause.",
                type: "InternalServerError")
        }
        // FastAPI's request validation, as vLLM renders it.
        guard let json = request.json, json.isObject else {
            return error(
                .badRequest,
                "1 validation error:\n  {'type': 'json_invalid', 'loc': ('body',), 'msg': 'JSON decode error'}",
                param: "body")
        }
        guard let completion = Completion(json, chat: chat) else {
            let field = chat ? "messages" : "prompt"
            return error(
                .badRequest,
                "1 validation error:\n  {'type': 'missing', 'loc': ('body', '\(field)'), 'msg': 'Field required'}",
                param: "body.\(field)")
        }
        let model = completion.model ?? options.servedNames[0]
        guard options.servedNames.contains(model) else {
            return error(.notFound, "The model `\(model)` does not exist.", type: "NotFoundError", param: "model")
        }
        return completion.answer(
            model: model, chat: chat, greeting: greeting, sseType: "text/event-stream; charset=utf-8",
            tokenDelay: tokenSeconds)
    }

    /// vLLM's ErrorResponse: {"error":{"message","type","param","code"}}.
    static func error(
        _ status: HTTPResponseStatus, _ message: String, type: String = "Bad Request", param: String? = nil
    ) -> Reply {
        let info: JSON = [
            "message": .string(message), "type": .string(type), "param": param.map(JSON.string) ?? nil,
            "code": .int(status.code),
        ]
        return .json(status, ["error": info])
    }

    /// `Authorization: Bearer <key>`, the scheme in any case, like vLLM's verify_token.
    static func authorized(_ request: Request, keys: [String]) -> Bool {
        let parts = (request.header("authorization") ?? "").split(separator: " ", maxSplits: 1).map(String.init)
        return parts.count == 2 && parts[0].lowercased() == "bearer" && keys.contains(parts[1])
    }
}
