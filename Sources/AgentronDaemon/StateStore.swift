import AgentronConfig
import AgentronCore
import FoundationEssentials
import Glibc

/// What the daemon runs, persisted atomically (temp file, fsync, rename: docs/conventions.md rule 8) so
/// a later daemon knows which servers were up, with pid + process start time so a reused
/// pid cannot fool it (docs/state-machine.md, live restore).
struct StateStore: Sendable {
    struct Descendant: Codable, Sendable, Equatable {
        var pid: Int32
        var startTime: UInt64
    }

    struct Record: Codable, Sendable, Equatable {
        var profile: Profile
        var state: ServerState
        var reason: String?
        var pid: Int32?
        /// Clock ticks after boot (/proc/<pid>/stat field 22): with the pid, the process identity.
        var processStartTime: UInt64?
        /// Unix time the engine started, for `ps`.
        var startedAt: Double?
        var port: Int?
        var restartCount: Int?
        var restarts: Int
        /// The user wants it running (`up` without a later `down`); survives the daemon's
        /// own shutdown so the server comes back when the daemon starts.
        var wanted: Bool?
        var cgroup: String?
        /// Descendants seen so far, so those that left the session are found after a restart.
        var descendants: [Descendant]?
    }

    struct File: Codable {
        var version: Int
        var servers: [Record]
    }

    static let version = 1
    let path: String

    func save(_ records: [Record]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(File(version: Self.version, servers: records))
        try FileIO.writeAtomically(Array(data), to: path, mode: 0o600, owner: nil)
    }

    func load() throws -> [Record] {
        guard let contents = try FileIO.read(path) else { return [] }
        return try JSONDecoder().decode(File.self, from: Data(contents.bytes)).servers
    }
}
