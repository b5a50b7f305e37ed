import CSQLite
import Glibc

/// An error from SQLite: its result code and its own message.
struct SQLiteError: Error, Sendable, CustomStringConvertible {
    var code: Int32
    var message: String

    var description: String { message }

    /// Another connection holds a lock we need (the busy timeout ran out first).
    var isBusy: Bool {
        let primary = code & 0xff
        return primary == SQLITE_BUSY || primary == SQLITE_LOCKED
    }
}

/// One connection to a database that already exists, for a few statements. Used from one
/// thread, inside one synchronous pass (FileIdentity.run: the files SQLite makes next to
/// the database, `-journal`, `-wal`, `-shm`, belong to whoever the thread acts as).
final class SQLiteConnection {
    private var handle: OpaquePointer?

    /// Opens `path` for reading and writing and never creates it: SQLITE_OPEN_READWRITE
    /// without SQLITE_OPEN_CREATE fails on a missing file. A file the caller may not write
    /// opens read-only (SQLite's rule); `isReadOnly` says so. `busyTimeout` is how long a
    /// statement waits for another connection's lock before failing with SQLITE_BUSY.
    init(existing path: String, busyTimeout: Duration) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let code = sqlite3_open_v2(path, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            // A handle comes back even on failure (unless memory ran out) and must be closed.
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(db)
            throw SQLiteError(code: code, message: message)
        }
        handle = db
        let (seconds, attoseconds) = busyTimeout.components
        sqlite3_busy_timeout(db, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    deinit { close() }

    /// Closes now, so the last connection's cleanup (a WAL checkpoint, the `-wal` file
    /// removed) runs under the caller's identity rather than whenever deinit would.
    func close() {
        guard let handle else { return }
        sqlite3_close_v2(handle)
        self.handle = nil
    }

    /// Whether SQLite opened the file read-only (the filesystem refused writing).
    var isReadOnly: Bool {
        guard let handle else { return true }
        return sqlite3_db_readonly(handle, "main") == 1
    }

    /// Runs statements that take no arguments and return no rows (`BEGIN IMMEDIATE`).
    func execute(_ sql: String) throws(SQLiteError) {
        _ = try query(sql, [])
    }

    /// Runs one statement with text (or NULL) arguments; every row, every column as text
    /// (NULL as nil). Numbers come back in SQLite's text form (`1`, `0`).
    @discardableResult
    func query(_ sql: String, _ arguments: [String?]) throws(SQLiteError) -> [[String?]] {
        guard let handle else { throw SQLiteError(code: SQLITE_MISUSE, message: "the database connection is closed") }
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else {
            sqlite3_finalize(statement)
            throw error(prepared)
        }
        defer { sqlite3_finalize(statement) }
        // SQLITE_TRANSIENT: SQLite copies the text, which Swift only lends for the call.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (index, argument) in arguments.enumerated() {
            let position = Int32(index + 1)
            let bound =
                if let argument {
                    sqlite3_bind_text(statement, position, argument, -1, transient)
                } else {
                    sqlite3_bind_null(statement, position)
                }
            guard bound == SQLITE_OK else { throw error(bound) }
        }
        var rows: [[String?]] = []
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else { throw error(step) }
            var row: [String?] = []
            for column in 0..<sqlite3_column_count(statement) {
                if sqlite3_column_type(statement, column) == SQLITE_NULL {
                    row.append(nil)
                } else if let text = sqlite3_column_text(statement, column) {
                    row.append(String(cString: text))
                } else {
                    row.append(nil)
                }
            }
            rows.append(row)
        }
        return rows
    }

    private func error(_ code: Int32) -> SQLiteError {
        guard let handle else { return SQLiteError(code: code, message: String(cString: sqlite3_errstr(code))) }
        return SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)))
    }
}
