import AgentronCore
import AgentronEngines
import AgentronJSON

/// OpenClaw's config (`~/.openclaw/openclaw.json`), opt-in: agentron keeps
/// `models.providers.agentron-<name>` true and touches no other key (issue #4).
///
/// OpenClaw validates this file strictly and an invalid or incomplete one stops its gateway,
/// so what agentron writes is held to the schema of current OpenClaw (`ModelProviderSchema`
/// and `ModelDefinitionSchema` in src/config/zod-schema.core.ts, both `.strict()`):
///
/// - Ids carry the `agentron-` prefix: a provider named `vllm` or `ollama` would switch off
///   OpenClaw's own discovery of those engines.
/// - The provider holds only `baseUrl`, `api`, `models` and `apiKey` (a placeholder for a
///   server without a key); a model only `id`, `name` and, when the profile sets the context length,
///   `contextWindow` and `maxTokens`.
/// - The file is never created: OpenClaw's own setup writes a complete one (`gateway.mode`
///   and the rest), and a file holding only `models` keeps recent gateways from starting.
/// - The file is JSON5. When it is not strict JSON (comments, unquoted keys, trailing
///   commas) agentron leaves it alone and offers the snippet to paste instead.
enum OpenClawFile {
    static let idPrefix = "agentron-"
    /// Below this many tokens OpenClaw refuses to run an agent on a model
    /// (`CONTEXT_WINDOW_HARD_MIN_TOKENS` in src/agents/context-window-guard.ts).
    static let minimumContext = 16_000
    /// The most output `maxTokens` asks for: a reply rarely needs more, and what it reserves
    /// is taken from the prompt's share of the window.
    static let maxOutputTokens = 8192

    static func providerId(_ server: RegisteredServer) -> String { idPrefix + server.name }
    /// What a server without an API key is registered with.
    static let noKey = "agentron-no-key"

    /// OpenClaw's client for the server, as the engine's driver names it: its
    /// OpenAI-compatible `openai-completions`, or one for the engine's own API.
    static func api(_ server: RegisteredServer) -> String {
        server.engine.driver.providerKind(for: .openClaw)
    }

    /// Where OpenClaw sends requests: the server's endpoint plus `/v1` for the OpenAI client
    /// (it appends `/chat/completions`); the engine's own root for a native one (Ollama's
    /// appends `/api/chat`).
    static func baseUrl(_ server: RegisteredServer) -> String {
        var base = server.endpoint
        while base.hasSuffix("/") { base.removeLast() }
        switch server.engine.driver.providerAPI(for: .openClaw) {
        case .native:
            if base.hasSuffix("/v1") { base.removeLast(3) }
            return base
        case .openAICompatible:
            return base.hasSuffix("/v1") ? base : base + "/v1"
        }
    }

    /// The output share of a `contextLength`-token window: a quarter, at most 8192, so a
    /// long prompt still fits beside it. vLLM refuses a request whose prompt plus
    /// `max_tokens` exceeds `--max-model-len`.
    static func maxTokens(contextLength: Int) -> Int {
        max(1, min(contextLength / 4, maxOutputTokens))
    }

    static func model(_ server: RegisteredServer) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("id", .string(server.model)), ("name", .string(server.model)),
        ]
        // Unknown: left out, and OpenClaw falls back to its own default. A guess could be
        // larger than the engine's window (requests fail) or smaller (prompts cut short).
        if let context = server.contextLength, context > 0 {
            members.append(("contextWindow", .number(String(context))))
            members.append(("maxTokens", .number(String(maxTokens(contextLength: context)))))
        }
        return JSONRender.sortedObject(members)
    }

    static func value(_ server: RegisteredServer, apiKey: String? = nil) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("baseUrl", .string(baseUrl(server))),
            ("api", .string(api(server))),
            ("models", .array([model(server)])),
        ]
        // Always a key: OpenClaw refuses to call a custom provider without one ("No API key
        // found for provider", openclaw/openclaw#42890, #49736), and a server without a key
        // ignores whatever is sent.
        members.append(("apiKey", .string(apiKey ?? server.apiKey ?? Self.noKey)))
        return JSONRender.sortedObject(members)
    }

    static func view(_ server: RegisteredServer) -> ProviderEntryView {
        ProviderEntryView(
            id: providerId(server), provider: api(server), endpoint: baseUrl(server), model: server.model, status: nil,
            hasApiKey: server.apiKey != nil)
    }

    /// Why a registered server will not work in OpenClaw although its entry is written: a
    /// context under OpenClaw's minimum. Nil when there is nothing to say.
    static func warning(_ desired: [RegisteredServer]) -> String? {
        let small = desired.filter { ($0.contextLength ?? minimumContext) < minimumContext }
        guard !small.isEmpty else { return nil }
        let names = small.map { "\(providerId($0)) (\($0.contextLength ?? 0))" }.joined(separator: ", ")
        return "OpenClaw refuses models with a context under \(minimumContext) tokens: \(names); "
            + "raise the profile's context length (vLLM --max-model-len) to use them there"
    }

    /// What `agentron providers` says while the config file does not exist.
    static func missing(_ path: String) -> String {
        "no OpenClaw config at \(path); run openclaw once (or openclaw setup) to create it, then agentron registers there"
    }

    /// What to paste under `models.providers` by hand. API keys are not printed: the
    /// placeholder says where the key is.
    static func snippet(_ desired: [RegisteredServer], path: String) -> String? {
        guard !desired.isEmpty else { return nil }
        var lines = ["// agentron: paste into models.providers of \(path) (replace any agentron-* entries there)"]
        for server in desired {
            let shown = value(server, apiKey: server.apiKey.map { _ in "<the api key of server \(server.name)>" })
            lines.append(
                JSONRender.quote(providerId(server)) + ": "
                    + JSONRender.render(shown, indent: "", unit: "  ", multiline: true) + ",")
        }
        return lines.joined(separator: "\n")
    }

    static func plan(existing: [UInt8]?, desired: [RegisteredServer]) throws(RegistrarFileError) -> RegistrarPlan {
        let providersValue = JSONValue.object(desired.map { (key: providerId($0), value: value($0)) })
        guard let existing else {
            // Never created (see above); the registrar does not get this far for a missing
            // file, so this is an empty one, which OpenClaw's setup fills.
            guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
            throw RegistrarFileError(
                description: "empty: not an OpenClaw config yet; run openclaw once (or openclaw setup) to fill it, "
                    + "then agentron registers there")
        }
        let root: JSONNode
        do {
            root = try JSONScanner.parse(existing)
        } catch {
            // JSON5 is OpenClaw's normal format, not a fault: with nothing to register there
            // is nothing to say about it.
            guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
            throw RegistrarFileError(
                description: "not strict JSON at line \(error.line), column \(error.column): \(error.message); "
                    + "left untouched (JSON5): paste the snippet by hand")
        }
        guard root.isObject else {
            throw RegistrarFileError(description: "the top level is not a JSON object; left untouched")
        }
        let unit = JSONSplice.indentUnit(existing, container: root) ?? "  "

        // Walk models → providers, adding whichever is missing as a new member.
        var container = root
        for (depth, key) in ["models", "providers"].enumerated() {
            let found = container.members(named: key)
            guard found.count <= 1 else {
                throw RegistrarFileError(description: "\"\(key)\" appears \(found.count) times; left untouched")
            }
            guard let next = found.first?.node else {
                guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
                let missing: JSONValue = depth == 0 ? .object([("providers", providersValue)]) : providersValue
                let render: JSONSplice.Render = { indent, unit, multiline in
                    JSONRender.quote(key) + ": "
                        + JSONRender.render(missing, indent: indent, unit: unit, multiline: multiline)
                }
                var splice = JSONSplice(bytes: existing, container: container)
                splice.fallbackUnit = unit
                let bytes = splice.apply(edits: Array(repeating: .keep, count: container.items.count), append: [render])
                return RegistrarPlan(
                    bytes: bytes, entries: desired.map(view), warning: warning(desired),
                    summary: "added " + desired.map(providerId).joined(separator: ", "))
            }
            guard next.isObject else {
                let path = depth == 0 ? "models" : "models.providers"
                throw RegistrarFileError(description: "\"\(path)\" is not an object; left untouched")
            }
            container = next
        }

        let wanted = Dictionary(desired.map { (providerId($0), $0) }, uniquingKeysWith: { first, _ in first })
        var edits: [JSONSplice.Edit] = []
        var placed = Set<String>()
        var entries: [ProviderEntryView] = []
        var added: [String] = []
        var updated: [String] = []
        var removed: [String] = []
        for item in container.items {
            let id = item.key ?? ""
            guard id.hasPrefix(idPrefix) else {
                edits.append(.keep)
                continue
            }
            guard let server = wanted[id], placed.insert(id).inserted else {
                edits.append(.remove)
                removed.append(id)
                continue
            }
            entries.append(view(server))
            let want = value(server)
            if item.node.value.same(as: want) {
                edits.append(.keep)
            } else {
                edits.append(
                    .replace({ indent, unit, multiline in
                        JSONRender.quote(id) + ": "
                            + JSONRender.render(want, indent: indent, unit: unit, multiline: multiline)
                    }))
                updated.append(id)
            }
        }
        var appends: [JSONSplice.Render] = []
        for server in desired where placed.insert(providerId(server)).inserted {
            let id = providerId(server)
            let want = value(server)
            appends.append({ indent, unit, multiline in
                JSONRender.quote(id) + ": " + JSONRender.render(want, indent: indent, unit: unit, multiline: multiline)
            })
            entries.append(view(server))
            added.append(id)
        }
        guard !(added.isEmpty && updated.isEmpty && removed.isEmpty) else {
            return RegistrarPlan(bytes: nil, entries: entries, warning: warning(desired))
        }
        var splice = JSONSplice(bytes: existing, container: container)
        splice.fallbackUnit = unit
        let bytes = splice.apply(edits: edits, append: appends)
        var parts: [String] = []
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !updated.isEmpty { parts.append("updated " + updated.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        return RegistrarPlan(
            bytes: bytes, entries: entries, warning: warning(desired), summary: parts.joined(separator: "; "))
    }
}
