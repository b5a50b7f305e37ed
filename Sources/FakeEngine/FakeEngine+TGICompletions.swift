import NIOHTTP1

// The bodies TGI 3.x's router returns: /info, /v1/models, /metrics, /generate (+ stream,
// + the compat POST /), and the OpenAI-style chat and text completions (JSON and SSE).
// Shapes follow router/src/lib.rs (Info, GenerateResponse, StreamResponse, ChatCompletion,
// ChatCompletionChunk, ErrorResponse{error, error_type}). TGI serves one model and ignores
// the request's "model": replies name the --model-id. The "model" echoes the last user
// message (or the prompt), one word a token, like the vLLM fixture.

enum TGICompletions {
    /// Replies are capped at this many tokens unless the request asks for fewer.
    static let maximumReplyTokens = 64
    /// /generate's default max_new_tokens.
    static let defaultMaxNewTokens = 20

    // MARK: - Info routes

    static func info(_ options: TGIOptions) -> String {
        "{"
            + #""model_id":\#(JSON.quote(options.modelID)),"model_sha":"\#(TGIErrors.fakeSHA(options.modelID))","#
            + #""model_pipeline_tag":"text-generation","max_concurrent_requests":128,"max_best_of":2,"#
            + #""max_stop_sequences":4,"max_input_tokens":\#(options.effectiveMaxInputTokens),"#
            + #""max_total_tokens":\#(options.effectiveMaxTotalTokens),"validation_workers":2,"#
            + #""max_client_batch_size":4,"router":"\#(TGI.router)","version":"\#(TGI.version)","#
            + #""sha":"\#(TGI.sha)","docker_label":"\#(TGI.dockerLabel)"}"#
    }

    static func models(_ options: TGIOptions) -> String {
        let id = JSON.quote(options.modelID)
        return #"{"object":"list","data":[{"id":\#(id),"object":"model","created":0,"owned_by":\#(id)}]}"#
    }

    static func metrics(_ state: TGIServerState) -> String {
        let requests = state.requestCount.load(ordering: .relaxed)
        let successes = state.successCount.load(ordering: .relaxed)
        return """
            # TYPE tgi_request_count counter
            tgi_request_count \(requests)
            # TYPE tgi_request_success counter
            tgi_request_success \(successes)
            # TYPE tgi_queue_size gauge
            tgi_queue_size 0
            # TYPE tgi_batch_current_size gauge
            tgi_batch_current_size 0

            """
    }

    // MARK: - Request extraction (axum's Json extractor)

    struct Rejection: Error {
        var reply: TGIReply
    }

    static func extractJSON(headers: HTTPHeaders, body: [UInt8]) -> Result<JSONValue, Rejection> {
        let contentType = headers.first(name: "content-type")?.lowercased() ?? ""
        let mime = contentType.split(separator: ";").first.map { String($0).trimmingCharacters(in: " \t") } ?? ""
        guard mime == "application/json" || (mime.hasPrefix("application/") && mime.hasSuffix("+json")) else {
            return .failure(Rejection(reply: .text(.unsupportedMediaType, "Expected request with `Content-Type: application/json`")))
        }
        do {
            return .success(try JSON.parse(body))
        } catch {
            let reason = body.isEmpty ? "EOF while parsing a value" : error.offset >= body.count ? "EOF while parsing a value" : "expected value"
            return .failure(Rejection(reply: .text(
                .badRequest, "Failed to parse the request body as JSON: \(reason) at line 1 column \(max(error.offset, 0) + (body.isEmpty ? 0 : 1))")))
        }
    }

    /// serde's data error, as axum words it (422, text/plain).
    static func dataError(_ message: String, body: [UInt8]) -> TGIReply {
        .text(.unprocessableEntity, "Failed to deserialize the JSON body into the target type: \(message) at line 1 column \(body.count)")
    }

    /// TGI's ErrorResponse for a validation failure (422).
    static func validationError(_ message: String) -> TGIReply {
        .json(.unprocessableEntity, #"{"error":\#(JSON.quote("Input validation error: " + message)),"error_type":"validation"}"#)
    }

    // MARK: - Generation

    struct Generation {
        var tokens: [String]
        var promptTokens: Int
        /// "length" when max tokens cut the reply, else "eos_token".
        var finishReason: String
        var text: String { tokens.joined() }
        /// OpenAI's words: eos_token → stop.
        var openAIFinishReason: String { finishReason == "eos_token" ? "stop" : finishReason }
    }

    /// The fake model: echo `promptText`, one word a token, at most `maxTokens`.
    static func generate(promptText: String, promptTokens: Int, maxTokens: Int?) -> Generation {
        var words = promptText.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        if words.isEmpty { words = TGI.emptyPromptReply.split(separator: " ").map(String.init) }
        let limit = min(maxTokens ?? maximumReplyTokens, maximumReplyTokens)
        let truncated = words.count > limit
        let tokens = words.prefix(max(limit, 0)).enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }
        return Generation(tokens: Array(tokens), promptTokens: promptTokens, finishReason: truncated ? "length" : "eos_token")
    }

    /// max_new_tokens checks from router/src/validation.rs.
    static func validate(maxNewTokens: Int?, promptTokens: Int, options: TGIOptions) -> TGIReply? {
        if promptTokens > options.effectiveMaxInputTokens {
            return validationError(
                "`inputs` tokens + `max_new_tokens` must be <= \(options.effectiveMaxTotalTokens). Given: \(promptTokens) `inputs` tokens and \(maxNewTokens ?? 1) `max_new_tokens`")
        }
        guard let maxNewTokens else { return nil }
        if maxNewTokens <= 0 { return validationError("`max_new_tokens` must be strictly positive") }
        if promptTokens + maxNewTokens > options.effectiveMaxTotalTokens {
            return validationError(
                "`inputs` tokens + `max_new_tokens` must be <= \(options.effectiveMaxTotalTokens). Given: \(promptTokens) `inputs` tokens and \(maxNewTokens) `max_new_tokens`")
        }
        return nil
    }

    static func usage(_ generation: Generation) -> String {
        #"{"prompt_tokens":\#(generation.promptTokens),"completion_tokens":\#(generation.tokens.count),"total_tokens":\#(generation.promptTokens + generation.tokens.count)}"#
    }

    static func now() -> Int { Clock.unixTime() }

    static func sse(_ json: String) -> String { "data:\(json)\n\n" }

    // MARK: /v1/chat/completions

    static func chat(_ json: JSONValue, body: [UInt8], state: TGIServerState) -> TGIReply {
        guard json.isObject else { return dataError("invalid type: expected struct ChatRequest", body: body) }
        guard let messages = json["messages"] else { return dataError("missing field `messages`", body: body) }
        guard let list = messages.arrayValue else {
            return dataError("messages: invalid type: expected a sequence", body: body)
        }
        let contents = list.map { ($0["role"]?.stringValue, text(of: $0["content"])) }
        let promptText = contents.last { $0.0 == "user" }?.1 ?? ""
        let promptTokens = contents.reduce(0) { $0 + wordCount($1.1) + 4 } + 1
        let maxTokens = (json["max_completion_tokens"]?.intValue) ?? json["max_tokens"]?.intValue
        if let failure = validate(maxNewTokens: maxTokens, promptTokens: promptTokens, options: state.options) { return failure }
        let generation = generate(promptText: promptText, promptTokens: promptTokens, maxTokens: maxTokens)
        let model = JSON.quote(state.options.modelID)
        let created = now()
        let head = #"{"id":"","created":\#(created),"model":\#(model),"system_fingerprint":"\#(TGI.systemFingerprint)","#

        if json["stream"]?.boolValue ?? false {
            let includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
            var events: [String] = []
            for (index, token) in generation.tokens.enumerated() {
                let last = index == generation.tokens.count - 1
                let finish = last ? #""\#(generation.openAIFinishReason)""# : "null"
                let usage = last && includeUsage ? usage(generation) : "null"
                events.append(sse(
                    head + #""object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":\#(JSON.quote(token))},"#
                        + #""logprobs":null,"finish_reason":\#(finish)}],"usage":\#(usage)}"#))
            }
            events.append("data:[DONE]\n\n")
            return .eventStream(events, headers: ["x-compute-type": "gpu+optimized", "x-accel-buffering": "no"])
        }
        return .json(
            .ok,
            head + #""object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":\#(JSON.quote(generation.text))},"#
                + #""logprobs":null,"finish_reason":"\#(generation.openAIFinishReason)"}],"usage":\#(usage(generation))}"#,
            headers: computeHeaders(generation))
    }

    // MARK: /v1/completions

    static func completion(_ json: JSONValue, body: [UInt8], state: TGIServerState) -> TGIReply {
        guard json.isObject else { return dataError("invalid type: expected struct CompletionRequest", body: body) }
        guard let prompt = json["prompt"] else { return dataError("missing field `prompt`", body: body) }
        let promptText: String
        switch prompt {
        case .string(let value): promptText = value
        case .array(let items): promptText = items.first?.stringValue ?? ""
        default: return dataError("prompt: invalid type: expected a string or a sequence", body: body)
        }
        let promptTokens = max(wordCount(promptText), 1) + 1
        let maxTokens = json["max_tokens"]?.intValue
        if let failure = validate(maxNewTokens: maxTokens, promptTokens: promptTokens, options: state.options) { return failure }
        let generation = generate(promptText: promptText, promptTokens: promptTokens, maxTokens: maxTokens)
        let model = JSON.quote(state.options.modelID)
        let created = now()
        let head = #"{"id":"","created":\#(created),"model":\#(model),"system_fingerprint":"\#(TGI.systemFingerprint)","#

        if json["stream"]?.boolValue ?? false {
            var events: [String] = []
            for (index, token) in generation.tokens.enumerated() {
                let last = index == generation.tokens.count - 1
                let choice = #"[{"index":0,"text":\#(JSON.quote(token)),"logprobs":null,"finish_reason":"\#(last ? generation.openAIFinishReason : "")"}]"#
                events.append(sse(head + #""object":"text_completion","choices":\#(choice)"# + (last ? #","usage":\#(usage(generation))}"# : "}")))
            }
            events.append("data:[DONE]\n\n")
            return .eventStream(events, headers: ["x-compute-type": "gpu+optimized"])
        }
        return .json(
            .ok,
            head + #""object":"text_completion","choices":[{"index":0,"text":\#(JSON.quote(generation.text)),"logprobs":null,"#
                + #""finish_reason":"\#(generation.openAIFinishReason)"}],"usage":\#(usage(generation))}"#,
            headers: computeHeaders(generation))
    }

    // MARK: /generate, /generate_stream, POST /

    static func generate(_ json: JSONValue, body: [UInt8], stream: Bool, compat: Bool, state: TGIServerState) -> TGIReply {
        guard json.isObject else {
            return dataError("invalid type: expected struct \(compat ? "CompatGenerateRequest" : "GenerateRequest")", body: body)
        }
        guard let inputsValue = json["inputs"] else { return dataError("missing field `inputs`", body: body) }
        guard let inputs = inputsValue.stringValue else { return dataError("inputs: invalid type: expected a string", body: body) }
        if inputs.isEmpty { return validationError("`inputs` cannot be empty") }
        let parameters = json["parameters"]
        let maxNewTokens = parameters?["max_new_tokens"]?.intValue ?? defaultMaxNewTokens
        let promptTokens = max(wordCount(inputs), 1)
        if let failure = validate(maxNewTokens: maxNewTokens, promptTokens: promptTokens, options: state.options) { return failure }
        let generation = generate(promptText: inputs, promptTokens: promptTokens, maxTokens: maxNewTokens)
        let returnFullText = parameters?["return_full_text"]?.boolValue ?? false
        let generated = (returnFullText ? inputs : "") + generation.text
        let seed = parameters?["seed"]?.intValue.map(String.init) ?? "null"

        if stream {
            var events: [String] = []
            for (index, token) in generation.tokens.enumerated() {
                let last = index == generation.tokens.count - 1
                let details =
                    last
                    ? #"{"finish_reason":"\#(generation.finishReason)","generated_tokens":\#(generation.tokens.count),"input_length":\#(promptTokens),"seed":\#(seed)}"#
                    : "null"
                events.append(sse(
                    #"{"index":\#(index + 1),"token":\#(tokenJSON(token)),"generated_text":\#(last ? JSON.quote(generated) : "null"),"#
                        + #""details":\#(details),"top_tokens":null}"#))
            }
            return .eventStream(events, headers: ["x-compute-type": "gpu+optimized", "x-accel-buffering": "no"])
        }

        var response = #"{"generated_text":\#(JSON.quote(generated))"#
        if parameters?["details"]?.boolValue ?? false || parameters?["decoder_input_details"]?.boolValue ?? false {
            response +=
                #","details":{"finish_reason":"\#(generation.finishReason)","generated_tokens":\#(generation.tokens.count),"#
                + #""seed":\#(seed),"prefill":[],"tokens":[\#(generation.tokens.map(tokenJSON).joined(separator: ","))],"top_tokens":[]}"#
        }
        response += "}"
        return .json(.ok, compat ? "[\(response)]" : response, headers: computeHeaders(generation))
    }

    static func tokenJSON(_ text: String) -> String {
        var id = 0
        for byte in text.utf8 { id = (id &* 31 &+ Int(byte)) % 32000 }
        return #"{"id":\#(id),"text":\#(JSON.quote(text)),"logprob":-0.1,"special":false}"#
    }

    static func computeHeaders(_ generation: Generation) -> [String: String] {
        [
            "x-compute-type": "gpu+optimized",
            "x-compute-time": "0.001",
            "x-prompt-tokens": String(generation.promptTokens),
            "x-generated-tokens": String(generation.tokens.count),
        ]
    }

    /// A message's text: a string, or the text parts of a content array.
    static func text(of content: JSONValue?) -> String {
        switch content {
        case .string(let value): return value
        case .array(let parts):
            return parts.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined(separator: "\n")
        default: return ""
        }
    }

    static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count
    }
}
