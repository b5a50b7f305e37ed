import CSQLite
import Foundation
import Testing

/// The Agentron app's database, found through the app's own AGENTRON_DATA_DIR: `up` puts
/// the server's row in, `down` takes it out, the app's row stays, through the real daemon
/// and CLI with the FakeEngine as `vllm`.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AgentronAppRegistrationTests {
    /// Runs one statement (or a script, when it returns nothing) on `path`; rows as text.
    @discardableResult
    static func sql(_ path: String, _ text: String, create: Bool = false) throws -> [[String?]] {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), nil) == SQLITE_OK,
            let db
        else {
            sqlite3_close(db)
            throw HarnessError("cannot open \(path)")
        }
        defer { sqlite3_close(db) }
        sqlite3_busy_timeout(db, 10_000)
        guard text.uppercased().hasPrefix("SELECT") || text.uppercased().hasPrefix("PRAGMA") else {
            guard sqlite3_exec(db, text, nil, nil, nil) == SQLITE_OK else {
                throw HarnessError(String(cString: sqlite3_errmsg(db)))
            }
            return []
        }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, text, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw HarnessError(String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(statement) }
        var rows: [[String?]] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            rows.append(
                (0..<sqlite3_column_count(statement)).map {
                    sqlite3_column_text(statement, $0).map { String(cString: $0) }
                })
        }
        return rows
    }

    static func rows(_ path: String) throws -> [[String?]] {
        try sql(path, "SELECT id, provider, model, api_key_ref, endpoint, extra FROM llm_configs ORDER BY id")
    }

    @Test func upAddsTheRowAndDownRemovesIt() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let dataDirectory = harness.home.appendingPathComponent("Agentron Studio")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        let database = dataDirectory.appendingPathComponent("agentron.sqlite").path
        try Self.sql(
            database,
            """
            CREATE TABLE llm_configs (id text primary key, provider text not null, model text not null,
              api_key_ref text, endpoint text, extra text);
            INSERT INTO llm_configs VALUES ('cloud', 'openai', 'gpt-4o', 'OPENAI_KEY', 'https://api.example.com', '{"rateLimit": 5}');
            """,
            create: true)
        let foreign = try Self.rows(database)
        try await harness.startDaemon(environment: ["AGENTRON_DATA_DIR": dataDirectory.path + "/"])

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "reg"])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let server = try #require(try await harness.servers().first { $0["name"] as? String == "reg" })
        let endpoint = try #require(server["endpoint"] as? String)

        var row: [String?]?
        let deadline = Date().addingTimeInterval(10)
        while row == nil, Date() < deadline {
            row = try Self.rows(database).first { $0[0] == "agentron-reg" }
            if row == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let registered = try #require(row, "no row agentron-reg in \(database): \(harness.daemonLog)")
        #expect(registered[1] == "custom_http")
        #expect(registered[2] == "reg", "the served model name")
        #expect(registered[3] == nil)
        #expect(registered[4] == endpoint)
        #expect(!(registered[4] ?? "").hasSuffix("/v1"))
        let extra = try #require(
            registered[5].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(extra["managedBy"] as? String == "agentron")
        #expect(extra["server"] as? String == "reg")

        let listed = try await harness.run(["providers", "--json"])
        #expect(listed.code == 0, "providers failed: \(listed.stderr)")
        let targets = try #require(try harness.json(listed.stdout)["targets"] as? [[String: Any]])
        let app = try #require(targets.first { $0["kind"] as? String == "agentron-app" })
        #expect(app["path"] as? String == database)
        #expect(app["enabled"] as? Bool == true)
        #expect(app["error"] == nil)
        #expect((app["entries"] as? [[String: Any]])?.first?["id"] as? String == "agentron-reg")

        let down = try await harness.run(["down", "reg"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        var gone = false
        let goneDeadline = Date().addingTimeInterval(10)
        while !gone, Date() < goneDeadline {
            gone = try Self.rows(database) == foreign
            if !gone { try await Task.sleep(for: .milliseconds(50)) }
        }
        let left = try Self.rows(database)
        #expect(gone, "the row is still there after down, or the app's row changed: \(left)")
        #expect(try Self.sql(database, "PRAGMA integrity_check") == [["ok"]])
    }
}
