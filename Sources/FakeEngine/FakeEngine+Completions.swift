// The OpenAI-compatible bodies vLLM 0.11 returns: model cards, chat and text completions
// (JSON and SSE), and its error bodies. Shapes follow vllm/entrypoints/openai/protocol.py
// (ModelCard, ModelPermission, ErrorResponse{error: ErrorInfo}, UsageInfo, ...).
// The "model" answers deterministically: it echoes the last user message, one word a token.

enum VLLMCompletions {
    /// Replies are capped at this many tokens unless max_tokens asks for fewer.
    static let maximumReplyTokens = 64
    static let emptyPromptReply = "Hello! This is a fake vLLM engine."

    static let engineDeadReply = VLLMReply.json(
        .internalServerError,
        errorBody(
            message: "EngineCore encountered an issue. See stack trace (above) for the root cause.",
            type: "InternalServerError", param: nil, code: 500))

    /// vLLM's ErrorResponse: {"error":{"message","type","param","code"}}.
    static func errorBody(message: String, type: String, param: String?, code: Int) -> String {
        #"{"error":{"message":\#(JSON.quote(message)),"type":\#(JSON.quote(type)),"param":\#(JSON.quoteOrNull(param)),"code":\#(code)}}"#
    }

    /// FastAPI's request validation failure as vLLM renders it (400, type "Bad Request").
    static func validationError(_ detail: String, param: String) -> VLLMReply {
        .json(.badRequest, errorBody(message: "1 validation error:\n  \(detail)", type: "Bad Request", param: param, code: 400))
    }

    // MARK: - /v1/models

    static func modelList(state: VLLMServerState) -> String {
        let options = state.options
        let cards = options.servedModelNames.map { name in
            let permission =
                #"{"id":"modelperm-\#(randomHex())","object":"model_permission","created":\#(state.createdTime),"#
                + #""allow_create_engine":false,"allow_sampling":true,"allow_logprobs":true,"allow_search_indices":false,"#
                + #""allow_view":true,"allow_fine_tuning":false,"organization":"*","group":null,"is_blocking":false}"#
            return #"{"id":\#(JSON.quote(name)),"object":"model","created":\#(state.createdTime),"owned_by":"vllm","#
                + #""root":\#(JSON.quote(options.model)),"parent":null,"max_model_len":\#(options.effectiveMaxModelLen),"#
                + #""permission":[\#(permission)]}"#
        }
        return #"{"object":"list","data":[\#(cards.joined(separator: ","))]}"#
    }

    static func metrics(state: VLLMServerState) -> String {
        let labels = #"engine="0",model_name=\#(JSON.quote(state.options.primaryServedName))"#
        return """
            # HELP vllm:num_requests_running Number of requests in model execution batches.
            # TYPE vllm:num_requests_running gauge
            vllm:num_requests_running{\(labels)} 0.0
            # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{\(labels)} 0.0

            """
    }

    // MARK: - Completions

    /// A parsed, validated generation request.
    struct Request {
        var model: String
        var promptText: String
        var promptTokens: Int
        var maxTokens: Int?
        var stream: Bool
        var includeUsage: Bool
    }

    static func complete(body: [UInt8], chat: Bool, state: VLLMServerState) -> VLLMReply {
        let request: Request
        switch parse(body: body, chat: chat, state: state) {
        case .success(let parsed): request = parsed
        case .failure(let failure): return failure.reply
        }
        // vLLM's _check_model, after request validation.
        guard state.options.servedModelNames.contains(request.model) else {
            return .json(
                .notFound,
                errorBody(message: "The model `\(request.model)` does not exist.", type: "NotFoundError", param: "model", code: 404))
        }

        var words = request.promptText.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        if words.isEmpty { words = emptyPromptReply.split(separator: " ").map(String.init) }
        let limit = min(request.maxTokens ?? maximumReplyTokens, maximumReplyTokens)
        let truncatedByMaxTokens = request.maxTokens.map { words.count > $0 } ?? false
        let tokens = words.prefix(max(limit, 0)).enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }
        let finishReason = truncatedByMaxTokens ? "length" : "stop"
        let usage =
            #"{"prompt_tokens":\#(request.promptTokens),"total_tokens":\#(request.promptTokens + tokens.count),"#
            + #""completion_tokens":\#(tokens.count),"prompt_tokens_details":null}"#
        let id = (chat ? "chatcmpl-" : "cmpl-") + randomHex()
        let created = Clock.unixTime()
        let model = JSON.quote(request.model)

        if request.stream {
            return .eventStream(
                streamEvents(
                    chat: chat, id: id, created: created, model: model, tokens: tokens,
                    finishReason: finishReason, usage: request.includeUsage ? usage : nil))
        }
        let text = JSON.quote(tokens.joined())
        if chat {
            let message =
                #"{"role":"assistant","content":\#(text),"refusal":null,"annotations":null,"audio":null,"#
                + #""function_call":null,"tool_calls":[],"reasoning_content":null}"#
            return .json(
                .ok,
                #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":\#(model),"#
                    + #""choices":[{"index":0,"message":\#(message),"logprobs":null,"finish_reason":"\#(finishReason)","stop_reason":null}],"#
                    + #""service_tier":null,"system_fingerprint":null,"usage":\#(usage),"prompt_logprobs":null,"kv_transfer_params":null}"#)
        }
        return .json(
            .ok,
            #"{"id":"\#(id)","object":"text_completion","created":\#(created),"model":\#(model),"#
                + #""choices":[{"index":0,"text":\#(text),"logprobs":null,"finish_reason":"\#(finishReason)","stop_reason":null,"prompt_logprobs":null}],"#
                + #""service_tier":null,"system_fingerprint":null,"usage":\#(usage),"kv_transfer_params":null}"#)
    }

    /// SSE events as vLLM streams them: (chat) a role delta, one delta per token, a final
    /// delta with finish_reason, an optional usage chunk with empty choices, then [DONE].
    static func streamEvents(
        chat: Bool, id: String, created: Int, model: String, tokens: [String], finishReason: String, usage: String?
    ) -> [String] {
        let object = chat ? "chat.completion.chunk" : "text_completion"
        let prefix = #"{"id":"\#(id)","object":"\#(object)","created":\#(created),"model":\#(model),"choices":["#
        func event(_ json: String) -> String { "data: \(json)\n\n" }
        func choice(_ text: String, finish: String?) -> String {
            let finishJSON = finish.map { #""\#($0)""# } ?? "null"
            let stop = finish == nil ? "" : #","stop_reason":null"#
            if chat {
                return #"{"index":0,"delta":{"content":\#(JSON.quote(text))},"logprobs":null,"finish_reason":\#(finishJSON)\#(stop)}"#
            }
            return #"{"index":0,"text":\#(JSON.quote(text)),"logprobs":null,"finish_reason":\#(finishJSON),"stop_reason":null}"#
        }

        var events: [String] = []
        if chat {
            events.append(event(prefix + #"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#))
        }
        for token in tokens { events.append(event(prefix + choice(token, finish: nil) + "]}")) }
        events.append(event(prefix + choice("", finish: finishReason) + "]}"))
        if let usage { events.append(event(prefix + #"],"usage":\#(usage)}"#)) }
        events.append("data: [DONE]\n\n")
        return events
    }

    struct RequestFailure: Error {
        var reply: VLLMReply
    }

    static func parse(body: [UInt8], chat: Bool, state: VLLMServerState) -> Result<Request, RequestFailure> {
        guard !body.isEmpty else {
            return .failure(RequestFailure(reply: validationError(
                "{'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}", param: "body")))
        }
        let json: JSONValue
        do {
            json = try JSON.parse(body)
        } catch {
            return .failure(RequestFailure(reply: validationError(
                "{'type': 'json_invalid', 'loc': ('body', \(error.offset)), 'msg': 'JSON decode error', 'input': {}, "
                    + "'ctx': {'error': '\(error.message)'}}",
                param: "body.\(error.offset)")))
        }
        guard json.isObject else {
            return .failure(RequestFailure(reply: validationError(
                "{'type': 'model_attributes_type', 'loc': ('body',), 'msg': 'Input should be a valid dictionary or object to extract fields from'}",
                param: "body")))
        }

        var model = state.options.primaryServedName
        if let value = json["model"], value != .null {
            guard let name = value.stringValue else {
                return .failure(RequestFailure(reply: validationError(
                    "{'type': 'string_type', 'loc': ('body', 'model'), 'msg': 'Input should be a valid string'}",
                    param: "body.model")))
            }
            model = name
        }

        let promptText: String
        let promptTokens: Int
        if chat {
            guard let messages = json["messages"]?.arrayValue else {
                return .failure(RequestFailure(reply: validationError(
                    "{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}", param: "body.messages")))
            }
            let contents = messages.map { ($0["role"]?.stringValue, text(of: $0["content"])) }
            promptText = contents.last { $0.0 == "user" }?.1 ?? ""
            // A rough stand-in for the tokenizer: words plus chat-template overhead.
            promptTokens = contents.reduce(0) { $0 + wordCount($1.1) + 4 } + 1
        } else {
            guard let prompt = json["prompt"], prompt != .null else {
                return .failure(RequestFailure(reply: validationError(
                    "{'type': 'missing', 'loc': ('body', 'prompt'), 'msg': 'Field required'}", param: "body.prompt")))
            }
            switch prompt {
            case .string(let value): promptText = value
            case .array(let items): promptText = items.first?.stringValue ?? ""
            default: promptText = ""
            }
            promptTokens = max(wordCount(promptText), 1) + 1
        }

        let maxTokens = (chat ? json["max_completion_tokens"]?.intValue : nil) ?? json["max_tokens"]?.intValue
        return .success(
            Request(
                model: model,
                promptText: promptText,
                promptTokens: promptTokens,
                maxTokens: maxTokens,
                stream: json["stream"]?.boolValue ?? false,
                includeUsage: json["stream_options"]?["include_usage"]?.boolValue ?? false))
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

    /// 32 hex digits, the random_uuid() vLLM puts in ids.
    static func randomHex() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = String(generator.next() as UInt64, radix: 16)
        let low = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - high.count) + high + String(repeating: "0", count: 16 - low.count) + low
    }
}
