import AgentronCore
import FoundationEssentials
import Glibc

/// What the daemon runs, persisted atomically (temp file, fsync, rename: STYLE rule 8) so
/// a later daemon knows which servers were up, with pid + process start time so a reused
/// pid cannot fool it (DESIGN §3, live restore).
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
        try AtomicFile.write(Array(data), to: path, mode: 0o600)
    }

    func load() throws -> [Record] {
        guard let text = readSmallFileBytes(path) else { return [] }
        return try JSONDecoder().decode(File.self, from: Data(text)).servers
    }

    private func readSmallFileBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return bytes
    }
}

enum AtomicFile {
    struct WriteError: Error, CustomStringConvertible {
        var path: String
        var step: String
        var code: Int32
        var description: String { "\(step) \(path): \(String(cString: strerror(code)))" }
    }

    /// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path`, and
    /// fsyncs the directory: a reader sees the old file or the new one, never a torn one.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temp = "\(path).tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WriteError(path: temp, step: "create", code: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + written }, bytes.count - written) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let code = errno
                close(fd)
                unlink(temp)
                throw WriteError(path: temp, step: "write", code: code)
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temp)
            throw WriteError(path: temp, step: "fsync", code: code)
        }
        close(fd)
        guard rename(temp, path) == 0 else {
            let code = errno
            unlink(temp)
            throw WriteError(path: path, step: "rename onto", code: code)
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }
}
