import AgentronCore

/// OpenClaw's config (`~/.openclaw/openclaw.json`), opt-in: agentron keeps
/// `models.providers.agentron-<name>` true and touches no other key (issue #4).
///
/// - Ids carry the `agentron-` prefix: a provider named `vllm` or `ollama` would switch off
///   OpenClaw's own discovery of those engines.
/// - OpenClaw's schema is strict (unknown keys are an error), so the value holds only
///   `baseUrl`, `api`, `models` and, when the server has one, `apiKey` (the schema's
///   `ModelProviderSchema` accepts an optional string there).
/// - The file is JSON5. When it is not strict JSON (comments, unquoted keys, trailing
///   commas) agentron leaves it alone and offers the snippet to paste instead.
enum OpenClawFile {
    static let idPrefix = "agentron-"
    static let api = "openai-completions"

    static func providerId(_ server: RegisteredServer) -> String { idPrefix + server.name }

    /// The OpenAI-compatible base OpenClaw appends `/chat/completions` to.
    static func baseUrl(_ server: RegisteredServer) -> String {
        var base = server.endpoint
        while base.hasSuffix("/") { base.removeLast() }
        return base.hasSuffix("/v1") ? base : base + "/v1"
    }

    static func value(_ server: RegisteredServer, apiKey: String? = nil) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("baseUrl", .string(baseUrl(server))),
            ("api", .string(api)),
            ("models", .array([.object([("id", .string(server.model)), ("name", .string(server.model))])])),
        ]
        if let key = apiKey ?? server.apiKey { members.append(("apiKey", .string(key))) }
        return JSONRender.sortedObject(members)
    }

    static func view(_ server: RegisteredServer) -> ProviderEntryView {
        ProviderEntryView(
            id: providerId(server), provider: api, endpoint: baseUrl(server), model: server.model, status: nil,
            hasApiKey: server.apiKey != nil)
    }

    /// What to paste under `models.providers` by hand. API keys are not printed: the
    /// placeholder says where the key is.
    static func snippet(_ desired: [RegisteredServer], path: String) -> String? {
        guard !desired.isEmpty else { return nil }
        var lines = ["// agentron: paste into models.providers of \(path) (replace any agentron-* entries there)"]
        for server in desired {
            let shown = value(server, apiKey: server.apiKey.map { _ in "<the api key of server \(server.name)>" })
            lines.append(JSONRender.quote(providerId(server)) + ": " + JSONRender.render(shown, indent: "", unit: "  ", multiline: true) + ",")
        }
        return lines.joined(separator: "\n")
    }

    static func plan(existing: [UInt8]?, desired: [RegisteredServer]) throws(RegistrarFileError) -> RegistrarPlan {
        let providersValue = JSONValue.object(desired.map { (key: providerId($0), value: value($0)) })
        guard let existing else {
            guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
            let document = JSONValue.object([("models", .object([("providers", providersValue)]))])
            let text = JSONRender.render(document, indent: "", unit: "  ", multiline: true) + "\n"
            return RegistrarPlan(
                bytes: Array(text.utf8), entries: desired.map(view),
                summary: "created with " + desired.map(providerId).joined(separator: ", "))
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
                    JSONRender.quote(key) + ": " + JSONRender.render(missing, indent: indent, unit: unit, multiline: multiline)
                }
                var splice = JSONSplice(bytes: existing, container: container)
                splice.fallbackUnit = unit
                let bytes = splice.apply(edits: Array(repeating: .keep, count: container.items.count), append: [render])
                return RegistrarPlan(
                    bytes: bytes, entries: desired.map(view),
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
                edits.append(.replace({ indent, unit, multiline in
                    JSONRender.quote(id) + ": " + JSONRender.render(want, indent: indent, unit: unit, multiline: multiline)
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
            return RegistrarPlan(bytes: nil, entries: entries)
        }
        var splice = JSONSplice(bytes: existing, container: container)
        splice.fallbackUnit = unit
        let bytes = splice.apply(edits: edits, append: appends)
        var parts: [String] = []
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !updated.isEmpty { parts.append("updated " + updated.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        return RegistrarPlan(bytes: bytes, entries: entries, summary: parts.joined(separator: "; "))
    }
}
