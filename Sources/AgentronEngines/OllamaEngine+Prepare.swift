import AgentronCore
import AgentronHTTP
import FoundationEssentials

// Ollama's startup work between "answers" and "ready" (docs/engines.md, "ollama"): look the
// model up, pull it by the profile's policy, load it with the keep-alive.

extension OllamaEngine {
    // MARK: Preparation: pull, then load

    /// Pull by the profile's policy, then load. `missing` asks /api/show first, so a model
    /// already on disk (pulled before, `ollama create`d, copied, imported from a GGUF) starts
    /// without the registry, which a pull always asks even for a model it has.
    public func prepare(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void)
        async throws(EngineError)
    {
        let model = context.profile.model
        var presence: ModelPresence = .missing
        if context.profile.pullPolicy != .always {
            await progress(EngineProgress(phase: "looking up \(model)"))
            presence = try await show(context)
        }
        if case .missing = presence {
            if context.profile.pullPolicy == .never {
                throw .startFailed(
                    "ollama: model \"\(model)\" is not on this machine and the profile says pull: never; run `ollama pull \(model)`, or set pull: missing"
                )
            }
            try await pull(context, progress: progress)
            // Only for its capabilities: a server too old to answer is loaded by trying.
            presence = (try? await show(context)) ?? .present(capabilities: nil)
        }
        await progress(EngineProgress(phase: "loading model"))
        var capabilities: [String]?
        if case .present(let known) = presence { capabilities = known }
        try await load(context, capabilities: capabilities)
    }

    enum ModelPresence: Equatable {
        /// On this machine; `capabilities` is nil where the server does not report them
        /// (Ollama before 0.6.4).
        case present(capabilities: [String]?)
        case missing
    }

    /// `POST /api/show`: 200 when the model is in the server's store, 404 when it is not.
    /// Any other answer is an error: guessing "missing" would pull on a server that is
    /// failing, guessing "present" would skip a pull that is needed.
    func show(_ context: EngineContext) async throws(EngineError) -> ModelPresence {
        let model = context.profile.model
        // `model` since Ollama 0.3; `name` for older servers (both are read, model first).
        let request = jsonPost(
            context, path: "/api/show", body: #"{"model":\#(Self.quote(model)),"name":\#(Self.quote(model))}"#)
        let response: HTTPResponse
        do {
            response = try await HTTPClient.shared.execute(request)
        } catch {
            throw .startFailed("ollama could not look up \"\(model)\" (POST /api/show): \(error)")
        }
        switch response.status {
        case 200:
            let shown = try? JSONDecoder().decode(ShowReply.self, from: Data(response.body))
            return .present(capabilities: shown?.capabilities)
        case 404:
            return .missing
        default:
            throw .startFailed(
                "ollama could not look up \"\(model)\" (POST /api/show): \(Self.errorMessage(response.body, status: response.status))"
            )
        }
    }

    /// `POST /api/pull` read as a stream. Ollama answers 200 and then reports errors inside
    /// the stream (`{"error":"pull model manifest: file does not exist"}` after "pulling
    /// manifest"), so every line is checked, and a stream that ends without "success" is a
    /// failure too.
    func pull(_ context: EngineContext, progress: @escaping @Sendable (EngineProgress) async -> Void)
        async throws(EngineError)
    {
        let model = context.profile.model
        await progress(EngineProgress(phase: "pulling \(model)"))
        let request = jsonPost(context, path: "/api/pull", body: #"{"model":\#(Self.quote(model)),"stream":true}"#)
        let response: HTTPStreamingResponse
        do {
            response = try await HTTPClient.shared.stream(request)
        } catch {
            throw pullFailed(model, "\(error)")
        }
        var lines = NDJSONLines()
        var succeeded = false
        var errorBody: [UInt8] = []
        do {
            for try await chunk in response.body {
                guard response.status == 200 else {
                    // An error reply before any progress: one JSON object, collected whole.
                    errorBody += chunk
                    continue
                }
                for line in lines.feed(chunk) {
                    switch try Self.pullEvent(line) {
                    case .progress(let update): await progress(update)
                    case .success: succeeded = true
                    case .failure(let message): throw pullFailed(model, message)
                    case .ignored: break
                    }
                }
            }
        } catch let error as EngineError {
            throw error
        } catch is CancellationError {
            throw pullFailed(model, "cancelled")
        } catch {
            throw pullFailed(model, "the pull stream broke off: \(error)")
        }
        if response.status != 200 {
            throw pullFailed(model, Self.errorMessage(errorBody, status: response.status))
        }
        // A last line without its newline still counts.
        if let rest = lines.finish() {
            switch try Self.pullEvent(rest) {
            case .success: succeeded = true
            case .failure(let message): throw pullFailed(model, message)
            case .progress, .ignored: break
            }
        }
        guard succeeded else {
            throw pullFailed(model, "the pull stream ended without \"success\"")
        }
    }

    /// Loads the model with the profile's keep-alive. A generating model: `POST /api/generate`
    /// with no prompt answers once it is in memory (`"done_reason":"load"`). An embedding
    /// model (nomic-embed-text, bge-m3) has no generation, and Ollama answers that with 400
    /// `"<model>" does not support generate`; `POST /api/embed` with no input loads it
    /// instead. /api/show's capabilities decide; without them, generate is tried first.
    func load(_ context: EngineContext, capabilities: [String]?) async throws(EngineError) {
        let model = context.profile.model
        let environment = ChildEnvironment.build(daemon: context.daemonEnvironment, profile: context.profile)
        let keepAlive = Self.keepAliveJSON(keepAlive(environment))
        let embedding = Self.isEmbeddingOnly(capabilities)
        if !embedding {
            let response = try await loadRequest(
                context, path: "/api/generate", body: #"{"model":\#(Self.quote(model)),"keep_alive":\#(keepAlive)}"#)
            if response.status == 200 { return }
            let message = Self.errorMessage(response.body, status: response.status)
            guard (capabilities ?? []).isEmpty, response.status == 400, message.hasSuffix("does not support generate")
            else {
                throw .startFailed("ollama could not load \"\(model)\": \(message)")
            }
        }
        let response = try await loadRequest(
            context, path: "/api/embed", body: #"{"model":\#(Self.quote(model)),"input":[],"keep_alive":\#(keepAlive)}"#
        )
        guard response.status == 200 else {
            throw .startFailed(
                "ollama could not load \"\(model)\" (embedding model, POST /api/embed): \(Self.errorMessage(response.body, status: response.status))"
            )
        }
    }

    /// Listed as an embedding model and not as a generating one.
    static func isEmbeddingOnly(_ capabilities: [String]?) -> Bool {
        guard let capabilities else { return false }
        return capabilities.contains("embedding") && !capabilities.contains("completion")
    }

    private func loadRequest(_ context: EngineContext, path: String, body: String) async throws(EngineError)
        -> HTTPResponse
    {
        do {
            return try await HTTPClient.shared.execute(jsonPost(context, path: path, body: body))
        } catch {
            throw .startFailed("ollama could not load \"\(context.profile.model)\" (POST \(path)): \(error)")
        }
    }

    private func jsonPost(_ context: EngineContext, path: String, body: String) -> HTTPRequest {
        // A pull or a load may take as long as the whole startup budget (gigabytes to fetch,
        // then to read into memory); the supervisor cancels it sooner on `down`.
        HTTPRequest(
            method: "POST", url: context.baseURL + path, headers: [("Content-Type", "application/json")],
            body: Array(body.utf8), timeout: context.profile.startupTimeout.duration,
            connectTimeout: Self.connectTimeout)
    }

    private func pullFailed(_ model: String, _ message: String) -> EngineError {
        .startFailed("ollama could not pull \"\(model)\": \(message)")
    }

    // MARK: Wire shapes

    enum PullEvent: Equatable {
        case progress(EngineProgress)
        case success
        case failure(String)
        case ignored
    }

    /// One NDJSON line of /api/pull: `{"status":"pulling 74701a8c35f6","digest":"sha256:…",
    /// "total":1321082688,"completed":1048576}`, `{"status":"success"}` or `{"error":"…"}`.
    static func pullEvent(_ line: [UInt8]) throws(EngineError) -> PullEvent {
        guard let update = try? JSONDecoder().decode(PullLine.self, from: Data(line)) else {
            let text = String(decoding: line, as: UTF8.self)
            throw .startFailed("ollama sent a pull update that is not JSON: \(text.prefix(200))")
        }
        if let error = update.error { return .failure(error) }
        guard let status = update.status, !status.isEmpty else { return .ignored }
        if status == "success" { return .success }
        var phase = status
        // Ollama names the layer in the status ("pulling 74701a8c35f6"); add the short digest
        // when a status does not.
        if let digest = update.digest, !digest.isEmpty {
            let hex = digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest
            let short = String(hex.prefix(12))
            if !phase.contains(short) { phase += " \(short)" }
        }
        let total = update.total.flatMap { $0 > 0 ? $0 : nil }
        return .progress(
            EngineProgress(phase: phase, completed: total == nil ? nil : update.completed ?? 0, total: total))
    }

    /// Ollama's `{"error":"…"}` body, or the raw text and status when it is something else.
    static func errorMessage(_ body: [UInt8], status: Int) -> String {
        if let decoded = try? JSONDecoder().decode(PullLine.self, from: Data(body)), let error = decoded.error {
            return error
        }
        let text = String(decoding: body, as: UTF8.self).trimmingSpaces
        return text.isEmpty ? "status \(status)" : "status \(status): \(text.prefix(300))"
    }

    /// keep_alive as Ollama's api.Duration reads it: a number is seconds (negative: forever);
    /// a string goes through Go's time.ParseDuration, which rejects a bare "-1" (no unit).
    static func keepAliveJSON(_ value: String) -> String {
        if let seconds = Int(value) { return String(seconds) }
        if let seconds = Double(value), seconds.isFinite { return String(seconds) }
        return quote(value)
    }

    static func quote(_ text: String) -> String {
        guard let data = try? JSONEncoder().encode(text) else { return "\"\"" }
        return String(decoding: data, as: UTF8.self)
    }

    struct PullLine: Decodable {
        var status: String?
        var digest: String?
        var total: Int64?
        var completed: Int64?
        var error: String?
    }

    /// The part of /api/show's reply used here.
    struct ShowReply: Decodable {
        var capabilities: [String]?
    }

    struct RunningModels: Decodable {
        struct Entry: Decodable {
            var name: String?
            var model: String?
        }
        var models: [Entry]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            // Ollama versions differ on an empty list: [] or null.
            models = try container.decodeIfPresent([Entry].self, forKey: .models) ?? []
        }

        enum CodingKeys: String, CodingKey { case models }
    }
}

/// Splits a byte stream into lines; a line may arrive split across chunks.
struct NDJSONLines {
    private var pending: [UInt8] = []
    /// A single line longer than this is not Ollama talking; it is dropped, not buffered forever.
    static let maximumLineBytes = 1 << 20

    /// The complete, non-blank lines in `chunk` (with what was pending before it).
    mutating func feed(_ chunk: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                if let line = take() { lines.append(line) }
            } else if pending.count < Self.maximumLineBytes {
                pending.append(byte)
            }
        }
        return lines
    }

    /// What is left after the stream ended, when it is not blank.
    mutating func finish() -> [UInt8]? { take() }

    private mutating func take() -> [UInt8]? {
        defer { pending.removeAll(keepingCapacity: true) }
        let isBlank = pending.allSatisfy {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t")
        }
        return isBlank ? nil : pending
    }
}
