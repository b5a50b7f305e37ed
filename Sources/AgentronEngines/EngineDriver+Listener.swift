import AgentronCore
import AgentronHTTP
import FoundationEssentials

// Telling an engine by what listens on a port: by the process name `Ports.holder` reports
// (the advice when a fixed port is taken), and by what the server answers (`agentron
// doctor`).

/// What a server on a port answered to the first requests any engine's check needs.
public struct ListenerAnswers: Sendable {
    /// `http://127.0.0.1:8000`.
    public var baseURL: String
    /// `GET /`.
    public var root: HTTPResponse
    /// The models `GET /v1/models` lists; nil when it lists none (no such route, not a
    /// model list, or `"data": null`).
    public var models: [ModelCard]?

    public init(baseURL: String, root: HTTPResponse, models: [ModelCard]?) {
        self.baseURL = baseURL
        self.root = root
        self.models = models
    }

    /// One entry of an OpenAI-compatible `/v1/models`.
    public struct ModelCard: Sendable, Equatable {
        public var id: String
        /// Who serves it, in the server's words: `vllm`, `llamacpp`, `organization_owner`.
        public var ownedBy: String?

        public init(id: String, ownedBy: String?) {
            self.id = id
            self.ownedBy = ownedBy
        }
    }

    /// The cards of a `/v1/models` body; nil when it is not a model list or its `data` is null.
    public static func modelCards(from body: [UInt8]) -> [ModelCard]? {
        guard let list = try? JSONDecoder().decode(Cards.self, from: Data(body)), let data = list.data else {
            return nil
        }
        return data.map { ModelCard(id: $0.id, ownedBy: $0.owned_by) }
    }

    /// The `owned_by` of every card, lower-cased.
    public var owners: Set<String> { Set((models ?? []).compactMap { $0.ownedBy?.lowercased() }) }

    private struct Cards: Decodable {
        struct Card: Decodable {
            var id: String
            var owned_by: String?
        }
        var data: [Card]?
    }
}

/// Who answers on a port, as `agentron doctor` reports it.
public struct ListenerIdentity: Sendable, Equatable {
    /// The engine as profiles name it: `vllm`.
    public var identified: String
    /// `vLLM 0.11.0`, `TGI 3.3.5 serving org/m`.
    public var detail: String
    /// The models to report when the engine lists them its own way; nil for those of
    /// `/v1/models`, when there are any.
    public var models: [String]?

    public init(identified: String, detail: String, models: [String]? = nil) {
        self.identified = identified
        self.detail = detail
        self.models = models
    }
}

extension EngineDriver {
    /// Whether `holder` (`Ports.holder`'s `pid 812 (ollama)`) is a process of this engine.
    public func isOwnProcess(_ holder: String?) -> Bool {
        guard let holder else { return false }
        return processNames.contains { holder.contains("(" + $0) }
    }

    /// More to say when a fixed port this engine wants is held by `holder`: when it is
    /// this engine already running and the engine can adopt it, the way to use it instead.
    public func advice(forPortHeldBy holder: String?) -> String? {
        guard profileKeys[.adopt] != nil, isOwnProcess(holder) else { return nil }
        return "; or, to use that \(displayName) instead of starting another, add --adopt"
    }

    /// A GET for `recognise`: the answer, or nil when there is none in time.
    func answer(_ url: String, timeout: Duration) async -> HTTPResponse? {
        try? await HTTPClient.shared.execute(HTTPRequest(url: url, timeout: timeout, connectTimeout: timeout))
    }

    /// The `version` of a `{"version": "..."}` answer at `path` (vLLM's `/version`,
    /// Ollama's `/api/version`).
    func reportedVersion(_ answers: ListenerAnswers, path: String, timeout: Duration) async -> String? {
        guard let response = await answer(answers.baseURL + path, timeout: timeout) else { return nil }
        return (try? JSONDecoder().decode([String: String].self, from: Data(response.body)))?["version"]
    }
}
