import NIOHTTP1

// TGI's router HTTP surface (axum): `/`, `/health` (200, empty body), `/info`,
// `/v1/models`, and `/v1/chat/completions` (guarded by --api-key when set; the info routes
// never are). axum's habits: 404 and 405 with empty bodies, its JSON extractor's
// rejections as text/plain (415 without a JSON content type, 400 for a syntax error, 422 for
// a missing field), SSE events written `data:<json>` with no space.

enum TGIRoutes {
    static let getRoutes: Set<String> = ["/", "/health", "/info", "/v1/models"]
    static let greeting = "Hello! This is a fake TGI engine."

    static func reply(_ request: Request, options: TGIOptions) -> Reply {
        let path = request.path
        let isChat = path == "/v1/chat/completions"
        guard getRoutes.contains(path) || isChat else { return .empty(.notFound) }
        guard isChat ? request.method == .POST : request.method == .GET || request.method == .HEAD else {
            return .empty(.methodNotAllowed, headers: [("allow", isChat ? "POST" : "GET,HEAD")])
        }
        switch path {
        case "/info":
            return .json(
                .ok,
                [
                    "model_id": .string(options.modelID),
                    "model_sha": .string(String(options.modelID.fakeDigest.prefix(40))),
                    "model_pipeline_tag": "text-generation", "max_input_tokens": .int(options.maxInputTokens),
                    "max_total_tokens": .int(options.maxTotalTokens), "router": "text-generation-router",
                    "version": .string(TGI.version),
                    "sha": .string(TGI.sha), "docker_label": .string("sha-" + TGI.sha.prefix(7)),
                ])
        case "/v1/models":
            let id = JSON.string(options.modelID)
            return .json(
                .ok, ["object": "list", "data": [["id": id, "object": "model", "created": 0, "owned_by": id]]])
        case "/v1/chat/completions":
            return chat(request, options: options)
        default:
            return .empty(.ok)
        }
    }

    /// The --api-key middleware, then axum's Json extractor, then the echo. TGI serves one
    /// model and ignores the request's "model".
    static func chat(_ request: Request, options: TGIOptions) -> Reply {
        if let key = options.apiKey, request.header("authorization")?.lowercased() != "bearer " + key.lowercased() {
            return .empty(.unauthorized)
        }
        let mime =
            request.header("content-type")?.lowercased().split(separator: ";").first.map { String($0).trimmed } ?? ""
        guard mime == "application/json" || (mime.hasPrefix("application/") && mime.hasSuffix("+json")) else {
            return text(.unsupportedMediaType, "Expected request with `Content-Type: application/json`")
        }
        guard let json = request.json else {
            return text(.badRequest, "Failed to parse the request body as JSON: expected value at line 1 column 1")
        }
        guard let completion = Completion(json, chat: true) else {
            return text(
                .unprocessableEntity,
                "Failed to deserialize the JSON body into the target type: missing field `messages`")
        }
        return completion.answer(
            model: options.modelID, chat: true, greeting: greeting, dataPrefix: "data:", sseType: "text/event-stream",
            extra: ["system_fingerprint": .string("\(TGI.version)-sha-\(TGI.sha.prefix(7))")],
            headers: [("x-compute-type", "gpu+optimized")])
    }

    static func text(_ status: HTTPResponseStatus, _ body: String) -> Reply {
        .full(status, contentType: "text/plain; charset=utf-8", body: body)
    }
}
