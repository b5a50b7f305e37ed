import AgentronCore
import AgentronEngines
import AgentronJSON

/// The Agentron app's provider table: `llm_configs` in its `agentron.sqlite`, which the app
/// reads on every request, so a row written while it runs is used at once (docs/providers.md).
///
/// agentron owns the rows whose `extra` JSON says `"managedBy": "agentron"`, and nothing
/// else in the database. Each ready server is one row `agentron-<name>`, written for the
/// app's `custom_http` (vLLM, TGI, command) or `local` (Ollama) adapter: both post to
/// `{endpoint}/v1/chat/completions` and send no Authorization header.
enum AgentronAppDatabase {
    static let table = "llm_configs"
    /// The columns agentron writes; the app's schema has exactly these.
    static let columns = ["id", "provider", "model", "api_key_ref", "endpoint", "extra"]
    static let idPrefix = "agentron-"
    static let managedBy = "agentron"
    /// The members of `extra` agentron sets; any other member (a rateLimit set in the app)
    /// is someone else's and survives an update.
    static let ownedExtraKeys: Set<String> = ["managedBy", "server", "contextLength"]
    /// How long a statement waits for the app's lock. The app's writes take milliseconds;
    /// a lock held longer than this makes the pass fail and the next poll try again.
    static let busyTimeout: Duration = .seconds(3)

    /// One row of `llm_configs`, every column as text (NULL as nil).
    struct Row: Equatable, Sendable {
        var id: String
        var provider: String?
        var model: String?
        var apiKeyRef: String?
        var endpoint: String?
        var extra: String?
    }

    /// What one pass over the database decided, computed without I/O.
    struct Plan: Sendable {
        var inserts: [Row] = []
        var updates: [Row] = []
        /// Ids of agentron's rows to delete.
        var deletes: [String] = []
        var entries: [ProviderEntryView] = []
        var warning: String?

        var isEmpty: Bool { inserts.isEmpty && updates.isEmpty && deletes.isEmpty }

        /// `added a; updated b; removed c`, nil when nothing changes.
        var summary: String? {
            var parts: [String] = []
            if !inserts.isEmpty { parts.append("added " + inserts.map(\.id).joined(separator: ", ")) }
            if !updates.isEmpty { parts.append("updated " + updates.map(\.id).joined(separator: ", ")) }
            if !deletes.isEmpty { parts.append("removed " + deletes.joined(separator: ", ")) }
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }
    }

    /// What a pass did, for the registrar to record and log once it acts as itself again.
    struct Outcome: Sendable {
        /// agentron's rows as the database holds them now; nil when the pass could not tell.
        var entries: [ProviderEntryView]?
        /// Written fine, but something to tell the user (a server left out, and why).
        var warning: String?
        /// Why nothing was written; nil when the pass succeeded.
        var failure: String?
        /// The failure may pass by itself (a lock held): try again on the next poll.
        var retry = false
        /// What changed, when something did.
        var summary: String?
    }

    static func rowId(_ server: RegisteredServer) -> String { idPrefix + server.name }

    /// The app's provider type for the engine, as the engine's driver names it: an adapter
    /// of the engine's own (`local`), or `custom_http` for any OpenAI-compatible server.
    static func providerType(_ engine: EngineKind) -> String {
        engine.driver.providerKind(for: .agentronApp)
    }

    /// The profile variables that set the keys `servers` require (`VLLM_API_KEY`), for the
    /// note that says why they are left out.
    static func keySettings(_ servers: [RegisteredServer]) -> String {
        var names: [String] = []
        for server in servers {
            if let name = server.engine.driver.apiKeyVariable, !names.contains(name) { names.append(name) }
        }
        return names.isEmpty ? "the API key" : names.joined(separator: " or ")
    }

    /// The base URL without `/v1`: the adapters strip a trailing `/v1` and append
    /// `/v1/chat/completions`, so the bare base is what they expect to see.
    static func endpoint(_ server: RegisteredServer) -> String {
        var base = server.endpoint
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        return base
    }

    static func parseExtra(_ text: String?) -> JSONValue? {
        guard let text, let node = try? JSONScanner.parse(Array(text.utf8)), node.isObject else { return nil }
        return node.value
    }

    static func isOwned(_ row: Row) -> Bool {
        parseExtra(row.extra)?["managedBy"]?.stringValue == managedBy
    }

    /// `extra` for `server`: agentron's members first, then the old value's other members.
    static func extra(_ server: RegisteredServer, old: JSONValue?) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("managedBy", .string(managedBy)), ("server", .string(server.name)),
        ]
        if let context = server.contextLength { members.append(("contextLength", .number(String(context)))) }
        if case .object(let existing)? = old {
            var seen = Set<String>()
            for member in existing where !ownedExtraKeys.contains(member.key) && seen.insert(member.key).inserted {
                members.append(member)
            }
        }
        return .object(members)
    }

    static func row(_ server: RegisteredServer, old: Row?) -> Row {
        let value = extra(server, old: parseExtra(old?.extra))
        return Row(
            id: rowId(server), provider: providerType(server.engine), model: server.model, apiKeyRef: nil,
            endpoint: endpoint(server), extra: JSONRender.render(value, indent: "", unit: "", multiline: false))
    }

    /// Whether the row already says what agentron wants (`extra` compared as JSON).
    static func matches(_ existing: Row, _ wanted: Row) -> Bool {
        guard existing.provider == wanted.provider, existing.model == wanted.model, existing.apiKeyRef == nil,
            existing.endpoint == wanted.endpoint, let old = parseExtra(existing.extra),
            let new = parseExtra(wanted.extra)
        else { return false }
        return old.same(as: new)
    }

    static func view(_ row: Row, _ server: RegisteredServer) -> ProviderEntryView {
        ProviderEntryView(
            id: row.id, provider: row.provider ?? "", endpoint: row.endpoint ?? "", model: row.model ?? "",
            status: server.status, hasApiKey: false)
    }

    /// Plans the pass from the table's rows: agentron's rows end up exactly `desired`, less
    /// the servers the app could not call, and no other row is touched.
    static func plan(rows: [Row], desired: [RegisteredServer]) -> Plan {
        var plan = Plan()
        var notes: [String] = []
        // The adapters send no key, so a server that wants one would answer every request 401.
        let keyed = desired.filter { $0.apiKey != nil }
        if !keyed.isEmpty {
            notes.append(
                "not registered: " + keyed.map { "\"\($0.name)\"" }.joined(separator: ", ")
                    + " (the server requires an API key, and the app's local and custom_http providers send none; "
                    + "remove \(Self.keySettings(keyed)) from its profile to use it from the app)")
        }
        var wanted: [String: RegisteredServer] = [:]
        for server in desired where server.apiKey == nil { wanted[rowId(server)] = server }

        var foreign = Set<String>()
        var owned: [String: Row] = [:]
        for row in rows {
            if isOwned(row) { owned[row.id] = row } else { foreign.insert(row.id) }
        }
        for row in rows where isOwned(row) && wanted[row.id] == nil {
            plan.deletes.append(row.id)
        }
        var conflicts: [String] = []
        for server in desired where server.apiKey == nil {
            let id = rowId(server)
            if foreign.contains(id) {
                conflicts.append(id)
                continue
            }
            let want = row(server, old: owned[id])
            if let old = owned[id] {
                if !matches(old, want) { plan.updates.append(want) }
            } else {
                plan.inserts.append(want)
            }
            plan.entries.append(view(want, server))
        }
        if !conflicts.isEmpty {
            notes.append(
                "not registered: " + conflicts.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " (a row not managed by agentron already has that id; rename the server or delete that row in the app)"
            )
        }
        plan.warning = notes.isEmpty ? nil : notes.joined(separator: "; ")
        return plan
    }

    /// Why a table of this shape is not the app's, from `PRAGMA table_info` rows (cid,
    /// name, type, notnull, dflt_value, pk); nil when agentron can write it.
    static func shapeProblem(_ info: [[String?]]) -> String? {
        guard !info.isEmpty else {
            return "no \(table) table (not the Agentron app's database, or the app has not set it up yet)"
        }
        var names: [String: (notNull: Bool, hasDefault: Bool, pk: Int)] = [:]
        for column in info where column.count >= 6 {
            guard let name = column[1] else { continue }
            names[name.lowercased()] = (column[3] == "1", column[4] != nil, Int(column[5] ?? "0") ?? 0)
        }
        let missing = columns.filter { names[$0] == nil }
        guard missing.isEmpty else {
            return "table \(table) has no column " + missing.joined(separator: ", ")
                + " (a schema agentron does not know)"
        }
        // Rows are addressed by id: with id not the whole primary key, one id could name
        // the app's row too.
        let keys = names.filter { $0.value.pk > 0 }.map(\.key)
        guard keys == ["id"] else {
            return "table \(table)'s primary key is not id alone (a schema agentron does not know)"
        }
        let required = names.filter { !columns.contains($0.key) && $0.value.notNull && !$0.value.hasDefault }.map(\.key)
            .sorted()
        guard required.isEmpty else {
            return "table \(table) requires column " + required.joined(separator: ", ")
                + ", which agentron does not know how to fill (a schema agentron does not know)"
        }
        return nil
    }

    /// One pass, synchronous from open to close (the caller may be acting as the database's
    /// owner): check the table's shape, read, and when something differs, write inside one
    /// short `BEGIN IMMEDIATE` transaction, re-reading under the lock. Never creates the file.
    static func sync(path: String, desired: [RegisteredServer]) -> Outcome {
        let database: SQLiteConnection
        do {
            database = try SQLiteConnection(existing: path, busyTimeout: busyTimeout)
        } catch {
            return Outcome(
                failure: "\(path): cannot open the Agentron app's database: \(error); nothing written", retry: true)
        }
        defer { database.close() }
        do throws(SQLiteError) {
            let info = try database.query("PRAGMA table_info(\(table))", [])
            if let problem = shapeProblem(info) {
                return Outcome(entries: [], failure: "\(path): \(problem); left untouched")
            }
            // A plain read first: most passes (the app wrote something else) change nothing
            // and need no write lock.
            var plan = Self.plan(rows: try read(database), desired: desired)
            guard !plan.isEmpty else { return Outcome(entries: plan.entries, warning: plan.warning) }
            guard !database.isReadOnly else {
                return Outcome(
                    entries: nil,
                    failure: "\(path): the database is read-only to agentron; nothing written: "
                        + "make it writable by the user agentrond writes it as (its directory's owner)")
            }
            try database.execute("BEGIN IMMEDIATE")
            do throws(SQLiteError) {
                plan = Self.plan(rows: try read(database), desired: desired)
                for id in plan.deletes {
                    try database.query("DELETE FROM \(table) WHERE id = ?", [id])
                }
                for row in plan.updates {
                    try database.query(
                        "UPDATE \(table) SET provider = ?, model = ?, api_key_ref = NULL, endpoint = ?, extra = ? WHERE id = ?",
                        [row.provider, row.model, row.endpoint, row.extra, row.id])
                }
                for row in plan.inserts {
                    try database.query(
                        "INSERT INTO \(table) (id, provider, model, api_key_ref, endpoint, extra) VALUES (?, ?, ?, NULL, ?, ?)",
                        [row.id, row.provider, row.model, row.endpoint, row.extra])
                }
                try database.execute("COMMIT")
            } catch {
                // Nothing half-done stays: the app sees all of the pass or none of it.
                try? database.execute("ROLLBACK")
                throw error
            }
            return Outcome(entries: plan.entries, warning: plan.warning, summary: plan.summary)
        } catch  where error.isBusy {
            return Outcome(
                failure: "\(path): the database is locked by another connection (waited \(busyTimeout)); "
                    + "agentron tries again in \(Registrar.pollInterval)",
                retry: true)
        } catch {
            return Outcome(failure: "\(path): \(error); nothing written", retry: true)
        }
    }

    static func read(_ database: SQLiteConnection) throws(SQLiteError) -> [Row] {
        let rows = try database.query("SELECT id, provider, model, api_key_ref, endpoint, extra FROM \(table)", [])
        return rows.compactMap { columns in
            // A row without an id is nobody agentron could address; it is left as it is.
            guard columns.count == 6, let id = columns[0] else { return nil }
            return Row(
                id: id, provider: columns[1], model: columns[2], apiKeyRef: columns[3], endpoint: columns[4],
                extra: columns[5])
        }
    }
}
