// The fixture's "model", shared by every mode: it answers with the prompt's words, one
// word a token, and the OpenAI-compatible bodies that carry the answer (chat.completion,
// text_completion and their SSE chunks), which vLLM, Ollama's /v1 and TGI all serve.

/// An OpenAI-style chat or text completion request.
struct Completion: Sendable {
    /// Replies are capped at this many tokens unless the request asks for fewer.
    static let maximumTokens = 64

    var model: String?
    var prompt: String
    var promptTokens: Int
    var maxTokens: Int?
    var stream: Bool
    var includeUsage: Bool

    /// Nil when a chat request has no `messages` list or a completion request no `prompt`.
    init?(_ json: JSON, chat: Bool) {
        if chat {
            guard let messages = json["messages"]?.array else { return nil }
            let contents = messages.map { ($0["role"]?.string, Self.text(of: $0["content"])) }
            prompt = contents.last { $0.0 == "user" }?.1 ?? ""
            // A rough stand-in for the tokenizer: words plus chat-template overhead.
            promptTokens = contents.reduce(1) { $0 + Self.words($1.1).count + 4 }
        } else {
            guard let value = json["prompt"], value != .null else { return nil }
            prompt = value.string ?? value.array?.first?.string ?? ""
            promptTokens = Self.words(prompt).count + 1
        }
        model = json["model"]?.string
        maxTokens = (chat ? json["max_completion_tokens"]?.int : nil) ?? json["max_tokens"]?.int
        stream = json["stream"]?.bool ?? false
        includeUsage = json["stream_options"]?["include_usage"]?.bool ?? false
    }

    /// A message's text: a string, or the text parts of a content array.
    static func text(of content: JSON?) -> String {
        if let text = content?.string { return text }
        return (content?.array ?? []).compactMap { $0["type"]?.string == "text" ? $0["text"]?.string : nil }.joined(
            separator: "\n")
    }

    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
    }

    /// The answer: the prompt's words (or `greeting`'s, for an empty prompt), the first
    /// bare and the rest with their leading space, as a tokenizer splits them.
    static func tokens(_ prompt: String, maxTokens: Int?, greeting: String) -> (tokens: [String], truncated: Bool) {
        var words = Self.words(prompt)
        if words.isEmpty { words = Self.words(greeting) }
        let limit = max(0, min(maxTokens ?? maximumTokens, maximumTokens))
        let tokens = words.prefix(limit).enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }
        return (tokens, words.count > limit)
    }

    /// The reply, JSON or SSE: `dataPrefix` is how the server writes an event ("data: ",
    /// or TGI's "data:"), `extra` the members one engine adds to every body.
    func answer(
        model: String, chat: Bool, greeting: String, dataPrefix: String = "data: ", sseType: String,
        extra: [String: JSON] = [:], headers: [(String, String)] = [], tokenDelay: Double = 0
    ) -> Reply {
        let (tokens, truncated) = Self.tokens(prompt, maxTokens: maxTokens, greeting: greeting)
        let finish: JSON = truncated ? "length" : "stop"
        let id: JSON = .string((chat ? "chatcmpl-" : "cmpl-") + String(UInt64.random(in: 1...UInt64.max), radix: 16))
        let created = JSON.int(Clock.unixTime())
        let usage: JSON = [
            "prompt_tokens": .int(promptTokens), "completion_tokens": .int(tokens.count),
            "total_tokens": .int(promptTokens + tokens.count),
        ]
        func body(_ object: String, _ choices: [JSON], usage: JSON? = nil) -> JSON {
            var members: [String: JSON] = [
                "id": id, "object": .string(object), "created": created, "model": .string(model),
                "choices": .array(choices),
            ]
            if let usage { members["usage"] = usage }
            return .object(members.merging(extra) { $1 })
        }
        func choice(_ key: String, _ value: JSON, finish: JSON) -> JSON {
            ["index": 0, key: value, "logprobs": nil, "finish_reason": finish]
        }
        func piece(_ text: String, delta: Bool) -> (String, JSON) {
            chat
                ? (delta ? "delta" : "message", ["role": "assistant", "content": .string(text)])
                : ("text", .string(text))
        }

        guard stream else {
            let (key, value) = piece(tokens.joined(), delta: false)
            return .json(
                .ok,
                body(chat ? "chat.completion" : "text_completion", [choice(key, value, finish: finish)], usage: usage),
                headers: headers)
        }
        let object = chat ? "chat.completion.chunk" : "text_completion"
        var events: [JSON] =
            chat ? [body(object, [choice("delta", ["role": "assistant", "content": ""], finish: nil)])] : []
        events += tokens.map { token in
            let (key, value) = piece(token, delta: true)
            return body(object, [choice(key, value, finish: nil)])
        }
        let (key, value) = piece("", delta: true)
        events.append(body(object, [choice(key, value, finish: finish)]))
        if includeUsage { events.append(body(object, [], usage: usage)) }
        let chunks =
            events.map { Chunk(delay: tokenDelay, text: dataPrefix + $0.text + "\n\n") }
            + [Chunk(text: dataPrefix + "[DONE]\n\n")]
        return .stream(contentType: sseType, chunks: chunks, headers: headers)
    }
}
