import AgentronConfig
import AgentronCore
import CSQLite
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

// The Agentron app's SQLite database as a registration target: agentron's rows follow the
// servers, every other row and any database it does not understand stay as they were.

/// The app's schema, as its migrations make it.
private let appSchema = """
    CREATE TABLE llm_configs (id text primary key, provider text not null, model text not null,
      api_key_ref text, endpoint text, extra text);
    """

/// A row the app's user made; it must survive every pass byte for byte.
private let foreignRow = """
    INSERT INTO llm_configs VALUES ('cloud', 'openai', 'gpt-4o', 'OPENAI_KEY', 'https://api.example.com',
      '{"rateLimit": {"rpm": 60},   "contextLength": 128000}');
    """

/// A test's own database, through the C API directly (not agentron's wrapper), and the
/// directory it lives in, removed when the test ends.
private final class AppDatabase: @unchecked Sendable {
    let directory: String
    let path: String

    /// A directory with no database in it.
    init() throws {
        // /tmp, not $TMPDIR: the root tests hand it to uid 65534, who must reach it.
        directory = "/tmp/agentron-app-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/agentron.sqlite"
    }

    /// A database made with `sql` (the app's schema by default).
    convenience init(schema sql: String) throws {
        try self.init()
        try execute(sql, create: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs `sql`: a script of statements, or one query whose rows come back as text.
    @discardableResult
    func execute(_ sql: String, create: Bool = false) throws -> [[String?]] {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
        guard sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK, let db else {
            sqlite3_close(db)
            throw TestFailure("cannot open \(path)")
        }
        defer { sqlite3_close(db) }
        sqlite3_busy_timeout(db, 10_000)
        var statement: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let prepared = sql.withCString { start in
            let code = sqlite3_prepare_v2(db, start, -1, &statement, &tail)
            // Several statements: a script, run whole.
            let more = tail.map { String(cString: $0).contains(where: { !$0.isWhitespace }) } ?? false
            return (code, more)
        }
        if prepared.1 {
            sqlite3_finalize(statement)
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw TestFailure(String(cString: sqlite3_errmsg(db)))
            }
            return []
        }
        guard prepared.0 == SQLITE_OK, let statement else { throw TestFailure(String(cString: sqlite3_errmsg(db))) }
        defer { sqlite3_finalize(statement) }
        var rows: [[String?]] = []
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else { throw TestFailure(String(cString: sqlite3_errmsg(db))) }
            rows.append(
                (0..<sqlite3_column_count(statement)).map { column in
                    sqlite3_column_text(statement, column).map { String(cString: $0) }
                })
        }
        return rows
    }

    /// Every row, all six columns, by id.
    func rows() throws -> [[String?]] {
        try execute("SELECT id, provider, model, api_key_ref, endpoint, extra FROM llm_configs ORDER BY id")
    }

    func row(_ id: String) throws -> [String?]? { try rows().first { $0[0] == id } }

    func extra(_ id: String) throws -> [String: Any] {
        let text = try #require(try row(id)?[5] ?? nil)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    var exists: Bool { FileManager.default.fileExists(atPath: path) }

    func bytes() throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// The check every test ends with: the database is sound.
    func expectIntact(sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try execute("PRAGMA integrity_check") == [["ok"]], sourceLocation: sourceLocation)
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

private let logger = Logger(label: "agentron-app-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func server(
    _ name: String, _ engine: EngineKind = .vllm, port: Int = 8001, apiKey: String? = nil, contextLength: Int? = nil
) -> RegisteredServer {
    RegisteredServer(
        name: name, engine: engine, endpoint: "http://127.0.0.1:\(port)", model: "org/\(name)", apiKey: apiKey,
        status: "ready", contextLength: contextLength)
}

/// A registrar with the app's database as its only interesting target (agentron's own file
/// goes in the same scratch directory).
private func registrar(_ database: AppDatabase) -> Registrar {
    Registrar(
        config: RegistrarConfig(providersPath: database.directory + "/providers.json", agentronAppPath: database.path),
        logger: logger)
}

private func appTarget(_ registrar: Registrar) async throws -> ProviderTarget {
    try #require(await registrar.status().targets.first { $0.kind == ProviderTarget.agentronApp })
}

@Suite(.serialized, .timeLimit(.minutes(1)))
struct AgentronAppTargetTests {
    @Test func findsTheDatabaseAsTheAppDoes() {
        let paths = AgentronPaths.current(environment: ["AGENTRON_HOME": "/tmp/h"])
        func resolved(_ environment: [String: String], root: Bool = false) -> String? {
            RegistrarConfig.resolve(paths: paths, environment: environment, isRoot: root).agentronAppPath
        }
        #expect(resolved([:]) == nil)
        #expect(resolved(["HOME": "/home/u"]) == "/home/u/.config/Agentron Studio/agentron.sqlite")
        #expect(resolved(["HOME": "/root"], root: true) == nil, "root's home is no user's app")
        #expect(resolved(["HOME": "/home/u", "AGENTRON_HOME": "/tmp/h"]) == nil, "an isolated agentron stays isolated")
        #expect(
            resolved(["HOME": "/home/u", "AGENTRON_DATA_DIR": "/srv/app/"], root: true) == "/srv/app/agentron.sqlite")
        #expect(
            resolved(["AGENTRON_DATA_DIR": "/srv/app", "AGENTRON_DB_PATH": "/data/a.db"]) == "/data/a.db",
            "the app's own variable for the file wins over its directory")
        #expect(
            resolved(["AGENTRON_DB_PATH": "/data/a.db", "AGENTRON_APP_DB": "~/x.sqlite", "HOME": "/home/u"])
                == "/home/u/x.sqlite")
        #expect(resolved(["AGENTRON_DB_PATH": "/data/a.db", "AGENTRON_APP_DB": "off", "HOME": "/home/u"]) == nil)
    }

    @Test func rowsAppearForReadyServersAndGoOnSyncEmpty() async throws {
        let database = try AppDatabase(schema: appSchema + foreignRow)
        let foreign = try database.row("cloud")
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }

        await registrar.sync([
            server("a", contextLength: 4096), server("b", .ollama, port: 11434),
            RegisteredServer(
                name: "c", engine: .command, endpoint: "http://127.0.0.1:8003/v1/", model: "m", apiKey: nil,
                status: "ready"),
        ])
        let a = try #require(try database.row("agentron-a"))
        #expect(a[1] == "custom_http")
        #expect(a[2] == "org/a")
        #expect(a[3] == nil, "the adapters send no key: no key reference")
        #expect(a[4] == "http://127.0.0.1:8001")
        let extra = try database.extra("agentron-a")
        #expect(extra["managedBy"] as? String == "agentron")
        #expect(extra["server"] as? String == "a")
        #expect(extra["contextLength"] as? Int == 4096)
        let b = try #require(try database.row("agentron-b"))
        #expect(b[1] == "local")
        #expect(b[4] == "http://127.0.0.1:11434")
        #expect(try database.extra("agentron-b")["contextLength"] == nil, "unknown: left out")
        #expect(try database.row("agentron-c")?[4] == "http://127.0.0.1:8003", "a trailing /v1 is not the base")
        #expect(try database.row("cloud") == foreign)

        let target = try await appTarget(registrar)
        #expect(target.enabled)
        #expect(target.path == database.path)
        #expect(target.error == nil)
        #expect(target.entries.map(\.id) == ["agentron-a", "agentron-b", "agentron-c"])
        #expect(target.entries[0].provider == "custom_http")
        #expect(target.lastWrite != nil)

        await registrar.sync([server("b", .ollama, port: 11434)])
        #expect(try database.rows().map { $0[0] } == ["agentron-b", "cloud"])
        await registrar.sync([])
        #expect(try database.rows() == [foreign].compactMap { $0 }, "only the app's row is left, column for column")
        #expect(try await appTarget(registrar).entries.isEmpty)
        try database.expectIntact()
    }

    @Test func updatesKeepTheAppsOwnExtraMembersAndAnUnchangedSetWritesNothing() async throws {
        let database = try AppDatabase(schema: appSchema + foreignRow)
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        // The app's user sets a rate limit on agentron's row in the app.
        try database.execute(
            """
            UPDATE llm_configs SET extra = '{"managedBy": "agentron", "server": "a", "rateLimit": {"rpm": 10}}'
            WHERE id = 'agentron-a'
            """)
        await registrar.sync([server("a", port: 9001, contextLength: 2048)])
        #expect(try database.row("agentron-a")?[4] == "http://127.0.0.1:9001")
        let extra = try database.extra("agentron-a")
        #expect(extra["contextLength"] as? Int == 2048)
        #expect((extra["rateLimit"] as? [String: Any])?["rpm"] as? Int == 10)

        let before = try database.bytes()
        let stamp = FileStamp.of(database.path)
        try await Task.sleep(for: .milliseconds(20))
        for _ in 0..<3 { await registrar.sync([server("a", port: 9001, contextLength: 2048)]) }
        #expect(try database.bytes() == before)
        #expect(FileStamp.of(database.path) == stamp, "not even a transaction that changes nothing")
        try database.expectIntact()
    }

    @Test func aForeignRowWithAgentronsIdIsLeftAndReported() async throws {
        let database = try AppDatabase(
            schema: appSchema + foreignRow
                + "INSERT INTO llm_configs VALUES ('agentron-a', 'openai', 'mine', NULL, 'http://x', NULL);")
        let before = try database.rows()
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a"), server("b")])
        #expect(try database.row("agentron-a") == before.first { $0[0] == "agentron-a" })
        #expect(try database.row("agentron-b") != nil, "the other server is registered")
        let target = try await appTarget(registrar)
        let error = try #require(target.error)
        #expect(error.contains("\"agentron-a\""), "\(error)")
        #expect(error.contains("not managed by agentron"))
        #expect(target.entries.map(\.id) == ["agentron-b"])
        await registrar.sync([])
        #expect(try database.rows() == before)
        try database.expectIntact()
    }

    @Test func aServerWithAnAPIKeyIsNotRegisteredAndIsReported() async throws {
        let database = try AppDatabase(schema: appSchema)
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a"), server("keyed", apiKey: "sk-secret")])
        #expect(try database.rows().map { $0[0] } == ["agentron-a"])
        #expect(try database.execute("SELECT count(*) FROM llm_configs WHERE extra LIKE '%sk-secret%'") == [["0"]])
        let target = try await appTarget(registrar)
        let error = try #require(target.error)
        #expect(error.contains("\"keyed\""), "\(error)")
        #expect(error.contains("API key"))
        #expect(!error.contains("sk-secret"))
        #expect(target.entries.map(\.id) == ["agentron-a"])
        try database.expectIntact()
    }

    @Test(arguments: [
        ("CREATE TABLE llm_configs (id integer primary key, name text);", "has no column provider"),
        ("CREATE TABLE settings (k text primary key, v text);", "no llm_configs table"),
        (
            appSchema.replacingOccurrences(of: "extra text)", with: "extra text, owner text not null)"),
            "requires column owner"
        ),
        (
            "CREATE TABLE llm_configs (id text, provider text, model text, api_key_ref text, endpoint text, extra text, "
                + "primary key (id, provider));", "primary key is not id alone"
        ),
    ])
    func aTableOfAnotherShapeIsLeftAloneAndReported(schema: String, reason: String) async throws {
        let database = try AppDatabase(schema: schema)
        let before = try database.bytes()
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try database.bytes() == before, "byte-identical")
        let target = try await appTarget(registrar)
        let error = try #require(target.error)
        #expect(error.contains(reason), "\(error)")
        #expect(error.contains("left untouched"))
        #expect(target.entries.isEmpty)
        try database.expectIntact()
    }

    @Test func aMissingDatabaseIsNeverCreated() async throws {
        let database = try AppDatabase()
        let nested = database.directory + "/not/there/agentron.sqlite"
        for path in [database.path, nested] {
            let registrar = Registrar(
                config: RegistrarConfig(providersPath: database.directory + "/providers.json", agentronAppPath: path),
                logger: logger)
            await registrar.sync([server("a")])
            await registrar.sync([])
            await registrar.stop()
            let target = try await appTarget(registrar)
            #expect(!target.enabled)
            #expect(target.path == path)
            #expect(target.error == nil)
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: database.directory)
        #expect(left.filter { $0.hasPrefix("agentron.sqlite") }.isEmpty, "\(left)")
        #expect(!FileManager.default.fileExists(atPath: database.directory + "/not"))

        // Made later by the app: the poll notices and writes.
        try database.execute(appSchema, create: true)
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try database.rows().map { $0[0] } == ["agentron-a"])
        try database.expectIntact()
    }

    @Test func aDatabaseMadeLaterIsPickedUpByThePoll() async throws {
        let database = try AppDatabase()
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(!database.exists)
        try database.execute(appSchema, create: true)
        let deadline = ContinuousClock.now.advanced(by: Registrar.pollInterval * 4)
        while ContinuousClock.now < deadline, try database.rows().isEmpty {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try database.rows().map { $0[0] } == ["agentron-a"])
        #expect(try await appTarget(registrar).enabled)
        try database.expectIntact()
    }

    @Test func aWALDatabaseWorksAndADroppedRowComesBack() async throws {
        let database = try AppDatabase(schema: "PRAGMA journal_mode=WAL;" + appSchema + foreignRow)
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try database.row("agentron-a") != nil)
        try database.execute("DELETE FROM llm_configs WHERE id = 'agentron-a'")
        let deadline = ContinuousClock.now.advanced(by: Registrar.pollInterval * 4)
        while ContinuousClock.now < deadline, try database.row("agentron-a") == nil {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try database.row("agentron-a") != nil, "put back by the poll")
        #expect(try database.execute("PRAGMA journal_mode") == [["wal"]])
        try database.expectIntact()
    }

    /// Another process holds the database's exclusive lock for longer than agentron's busy
    /// timeout: the pass waits, fails, says so, and the next poll writes the row.
    @Test func aLockedDatabaseDelaysTheWriteButDoesNotLoseIt() async throws {
        let database = try AppDatabase(schema: appSchema + foreignRow)
        let foreign = try database.row("cloud")
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        // Made and waited for off Swift's cooperative threads: blocking one of them (two on
        // this machine) for seconds would stall every other test running beside this one.
        let holder = try await offThePool { try LockHolder(path: database.path, seconds: 4) }
        let started = ContinuousClock.now
        await registrar.sync([server("a")])
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(2500), "the busy timeout waited for the lock: \(waited)")
        let error = try await appTarget(registrar).error
        let held = holder.isHolding

        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        while ContinuousClock.now < deadline, try database.row("agentron-a") == nil {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await offThePool { try holder.finish() } == 0, "the other writer's transaction committed")
        #expect(try database.row("agentron-a")?[4] == "http://127.0.0.1:8001")
        #expect(try database.row("cloud") == foreign)
        if held {
            #expect(error?.contains("locked") == true, "\(error ?? "no error")")
        }
        let settle = ContinuousClock.now.advanced(by: Registrar.pollInterval * 2)
        while ContinuousClock.now < settle, try await appTarget(registrar).error != nil {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await appTarget(registrar).error == nil)
        try database.expectIntact()
    }
}

/// Holds `BEGIN EXCLUSIVE` on a database from another process (python3's sqlite3), or,
/// where there is no python3, from another connection on a thread of this one: SQLite's
/// locks between connections work the same either way.
private final class LockHolder: @unchecked Sendable {
    private let process: Process?
    private let thread: Thread?
    private let done = DispatchSemaphore(value: 0)
    private let end: Date
    private var status: Int32 = 0

    init(path: String, seconds: Double) throws {
        end = Date().addingTimeInterval(seconds)
        let script = """
            import sqlite3, sys, time
            con = sqlite3.connect(sys.argv[1], isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
            con.execute("COMMIT")
            """
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        if let python {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", script, path, String(seconds)]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            // Wait for the lock to be taken before agentron tries.
            let line = output.fileHandleForReading.availableData
            guard String(decoding: line, as: UTF8.self).hasPrefix("locked") else {
                process.waitUntilExit()
                throw TestFailure("python3 did not take the lock (exit \(process.terminationStatus))")
            }
            self.process = process
            thread = nil
        } else {
            process = nil
            let taken = DispatchSemaphore(value: 0)
            let done = self.done
            var db: OpaquePointer?
            guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let db else {
                throw TestFailure("cannot open \(path)")
            }
            let connection = UnsafeSendable(db)
            thread = Thread {
                sqlite3_exec(connection.value, "BEGIN EXCLUSIVE", nil, nil, nil)
                taken.signal()
                Thread.sleep(forTimeInterval: seconds)
                sqlite3_exec(connection.value, "COMMIT", nil, nil, nil)
                sqlite3_close(connection.value)
                done.signal()
            }
            thread?.start()
            taken.wait()
        }
    }

    var isHolding: Bool { Date() < end.addingTimeInterval(-0.2) }

    /// Waits for the holder to commit and let go; its exit status.
    func finish() throws -> Int32 {
        if let process {
            process.waitUntilExit()
            return process.terminationStatus
        }
        done.wait()
        return 0
    }
}

private struct UnsafeSendable<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

private let nobody: uid_t = 65534
private let nogroup: gid_t = 65534
private let rootOnly = "needs root: it checks what a root daemon does to a database in a directory owned by uid 65534"

/// As root, the app's database in a user's directory is opened and written as that user:
/// the kernel checks SQLite's opens as the user, and what SQLite makes there is the user's.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct AgentronAppTargetAsRootTests {
    /// A database of the app's, in a directory under /tmp (uid 65534 must reach it), both
    /// owned by nobody.
    private func usersDatabase(mode: mode_t) throws -> AppDatabase {
        let database = try AppDatabase(schema: appSchema + foreignRow)
        chmod(database.directory, 0o755)
        try #require(chown(database.directory, nobody, nogroup) == 0)
        try #require(chown(database.path, nobody, nogroup) == 0)
        chmod(database.path, mode)
        return database
    }

    private func owners(_ directory: String) throws -> [String: uid_t] {
        var result: [String: uid_t] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            var info = stat()
            if lstat(directory + "/" + name, &info) == 0 { result[name] = info.st_uid }
        }
        return result
    }

    @Test(.enabled(if: getuid() == 0, Comment(rawValue: rootOnly)))
    func theUsersDatabaseIsWrittenAsTheUser() async throws {
        let database = try usersDatabase(mode: 0o644)
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try await appTarget(registrar).error == nil)
        #expect(try database.row("agentron-a") != nil)
        let owners = try owners(database.directory)
        #expect(owners.filter { $0.key.hasPrefix("agentron.sqlite") }.allSatisfy { $0.value == nobody }, "\(owners)")
        try database.expectIntact()
    }

    @Test(.enabled(if: getuid() == 0, Comment(rawValue: rootOnly)))
    func aDatabaseTheUserCannotWriteIsNotWrittenByRoot() async throws {
        let database = try usersDatabase(mode: 0o444)
        let before = try database.bytes()
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try database.bytes() == before)
        let error = try #require(try await appTarget(registrar).error)
        #expect(error.contains("read-only"), "\(error)")
    }

    @Test(.enabled(if: getuid() == 0, Comment(rawValue: rootOnly)))
    func aDatabaseOfAnotherUserInTheUsersDirectoryIsLeftAlone() async throws {
        let database = try usersDatabase(mode: 0o644)
        try #require(chown(database.path, 0, 0) == 0)
        let before = try database.bytes()
        let registrar = registrar(database)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try database.bytes() == before)
        let error = try #require(try await appTarget(registrar).error)
        #expect(error.contains("owned by uid 0, not by the directory's owner uid 65534"), "\(error)")
    }
}

/// Runs blocking work (waiting for another process) on a Dispatch thread, not on one of
/// Swift concurrency's few cooperative threads.
private func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
    }
}
