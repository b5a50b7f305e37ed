import AgentronCore
import AgentronEngines
import AgentronJSON

/// What a pass over one target decided, computed without I/O so it can be tested alone.
struct RegistrarPlan: Sendable {
    /// The new file, or nil when nothing needs writing.
    var bytes: [UInt8]?
    /// agentron's entries as the file holds them after the write (or as it already held them).
    var entries: [ProviderEntryView]
    /// Something to tell the user although the file was fine (e.g. an id taken by an entry
    /// agentron does not own).
    var warning: String?
    /// One line for the daemon log when something changed: `added a; updated b; removed c`.
    var summary: String?
}

/// Why a target's file was left untouched.
struct RegistrarFileError: Error, Sendable, CustomStringConvertible {
    var description: String
}

/// agentron's own provider file: `{"version": 1, "providers": [ {...}, ... ]}`. agentron
/// owns the elements of `providers` whose `managedBy` is `"agentron"`, and nothing else.
enum ProvidersFile {
    static let managedBy = "agentron"
    static let version = 1
    /// The members agentron sets in its own entries; any other member is someone else's and
    /// survives an update.
    static let ownedKeys: Set<String> = [
        "id", "provider", "endpoint", "model", "apiKey", "managedBy", "status", "updatedAt", "baseUrl", "models", "api",
    ]

    /// Every entry is an OpenAI-compatible endpoint: `api` says so, for apps that take
    /// several kinds.
    static let api = "openai"

    /// The gateway's entry says `openai`: one OpenAI-compatible endpoint for many models.
    static let gatewayProvider = "openai"

    /// The provider type an app's adapter knows the engine by (docs/engines.md): the
    /// engine's driver says.
    static func providerType(_ engine: EngineKind) -> String {
        engine.driver.providerKind(for: .providersFile)
    }

    /// The entry agentron wants for `server`, without `updatedAt` (compared apart from it).
    static func fields(_ server: RegisteredServer) -> [(key: String, value: JSONValue)] {
        var fields: [(key: String, value: JSONValue)] = [
            ("id", .string(server.name)),
            ("provider", .string(server.gatewayModels == nil ? providerType(server.engine) : gatewayProvider)),
            ("api", .string(api)),
            // What every OpenAI SDK takes as its base URL; `endpoint` stays for older readers.
            ("baseUrl", .string(server.endpoint + "/v1")),
            ("endpoint", .string(server.endpoint)),
            ("model", .string(server.model)),
            // A server answers to the one name it serves; the gateway to every name it routes.
            ("models", .array((server.gatewayModels ?? [server.model]).map(JSONValue.string))),
            ("managedBy", .string(managedBy)),
            ("status", .string(server.status)),
        ]
        if let key = server.apiKey { fields.append(("apiKey", .string(key))) }
        return fields
    }

    static func view(_ server: RegisteredServer) -> ProviderEntryView {
        ProviderEntryView(
            id: server.name, provider: server.gatewayModels == nil ? providerType(server.engine) : gatewayProvider,
            endpoint: server.endpoint, model: server.model,
            status: server.status, hasApiKey: server.apiKey != nil)
    }

    /// Whether an existing entry already says what `server` wants (its `updatedAt` aside).
    static func matches(_ entry: JSONValue, _ server: RegisteredServer) -> Bool {
        for (key, value) in fields(server) where !(entry[key].map { $0.same(as: value) } ?? false) {
            return false
        }
        return server.apiKey != nil || entry["apiKey"] == nil
    }

    /// The entry to write: the old entry's members that are not agentron's, plus agentron's.
    static func merged(old: JSONValue?, server: RegisteredServer, updatedAt: String) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        if case .object(let existing)? = old {
            var seen = Set<String>()
            for member in existing where !ownedKeys.contains(member.key) && seen.insert(member.key).inserted {
                members.append(member)
            }
        }
        members += fields(server)
        members.append(("updatedAt", .string(updatedAt)))
        return JSONRender.sortedObject(members)
    }

    static func isOwned(_ entry: JSONValue) -> Bool {
        entry["managedBy"]?.stringValue == managedBy
    }

    /// Plans the pass: `existing` is the file's bytes (nil: no file, or an empty one).
    static func plan(existing: [UInt8]?, desired: [RegisteredServer], updatedAt: String) throws(RegistrarFileError)
        -> RegistrarPlan
    {
        guard let existing else {
            guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
            let document = JSONValue.object([
                ("providers", .array(desired.map { merged(old: nil, server: $0, updatedAt: updatedAt) })),
                ("version", .number(String(version))),
            ])
            let text = JSONRender.render(document, indent: "", unit: "  ", multiline: true) + "\n"
            return RegistrarPlan(
                bytes: Array(text.utf8), entries: desired.map(view),
                summary: "created with " + desired.map(\.name).joined(separator: ", "))
        }

        let root: JSONNode
        do {
            root = try JSONScanner.parse(existing)
        } catch {
            throw RegistrarFileError(description: "\(error); left untouched")
        }
        guard root.isObject else {
            throw RegistrarFileError(description: "the top level is not a JSON object; left untouched")
        }
        let providersMembers = root.members(named: "providers")
        guard providersMembers.count <= 1 else {
            throw RegistrarFileError(
                description: "\"providers\" appears \(providersMembers.count) times; left untouched")
        }
        let rootUnit = JSONSplice.indentUnit(existing, container: root) ?? "  "

        guard let providers = providersMembers.first?.node else {
            // A file of the app's own with no providers yet: add the key, touch nothing else.
            guard !desired.isEmpty else { return RegistrarPlan(bytes: nil, entries: []) }
            let array = JSONValue.array(desired.map { merged(old: nil, server: $0, updatedAt: updatedAt) })
            let render: JSONSplice.Render = { indent, unit, multiline in
                JSONRender.quote("providers") + ": "
                    + JSONRender.render(array, indent: indent, unit: unit, multiline: multiline)
            }
            var splice = JSONSplice(bytes: existing, container: root)
            splice.fallbackUnit = rootUnit
            let bytes = splice.apply(edits: Array(repeating: .keep, count: root.items.count), append: [render])
            return RegistrarPlan(
                bytes: bytes, entries: desired.map(view),
                summary: "added " + desired.map(\.name).joined(separator: ", "))
        }
        guard providers.isArray else {
            throw RegistrarFileError(description: "\"providers\" is not an array; left untouched")
        }

        let wanted = Dictionary(desired.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        // Ids held by entries agentron does not own: registering the same id would give the
        // app two providers of one name, so agentron's is left out and the user told.
        var foreignIds = Set<String>()
        for item in providers.items where !isOwned(item.node.value) {
            if let id = item.node.value["id"]?.stringValue { foreignIds.insert(id) }
        }

        var edits: [JSONSplice.Edit] = []
        var placed = Set<String>()
        var entries: [ProviderEntryView] = []
        var added: [String] = []
        var updated: [String] = []
        var removed: [String] = []
        for item in providers.items {
            let entry = item.node.value
            guard isOwned(entry) else {
                edits.append(.keep)
                continue
            }
            let id = entry["id"]?.stringValue ?? ""
            guard let server = wanted[id], !foreignIds.contains(id), placed.insert(id).inserted else {
                edits.append(.remove)
                removed.append(id.isEmpty ? "(an entry without id)" : id)
                continue
            }
            entries.append(view(server))
            if matches(entry, server) {
                edits.append(.keep)
            } else {
                let value = merged(old: entry, server: server, updatedAt: updatedAt)
                edits.append(
                    .replace({ indent, unit, multiline in
                        JSONRender.render(value, indent: indent, unit: unit, multiline: multiline)
                    }))
                updated.append(id)
            }
        }
        var appends: [JSONSplice.Render] = []
        var conflicts: [String] = []
        for server in desired where !placed.contains(server.name) {
            guard !foreignIds.contains(server.name) else {
                conflicts.append(server.name)
                continue
            }
            placed.insert(server.name)
            let value = merged(old: nil, server: server, updatedAt: updatedAt)
            appends.append({ indent, unit, multiline in
                JSONRender.render(value, indent: indent, unit: unit, multiline: multiline)
            })
            entries.append(view(server))
            added.append(server.name)
        }
        let warning =
            conflicts.isEmpty
            ? nil
            : "not registered: " + conflicts.map { "\"\($0)\"" }.joined(separator: ", ")
                + " (an entry not managed by agentron already has that id; rename the server or remove that entry)"
        guard !(added.isEmpty && updated.isEmpty && removed.isEmpty) else {
            return RegistrarPlan(bytes: nil, entries: entries, warning: warning)
        }
        var splice = JSONSplice(bytes: existing, container: providers)
        splice.fallbackUnit = rootUnit
        let bytes = splice.apply(edits: edits, append: appends)
        var parts: [String] = []
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !updated.isEmpty { parts.append("updated " + updated.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        return RegistrarPlan(bytes: bytes, entries: entries, warning: warning, summary: parts.joined(separator: "; "))
    }
}
