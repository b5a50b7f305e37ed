import AgentronCore
import Glibc

/// A random id per daemon, kept in its state directory (`instance-id`). Containers carry
/// it as the `agentron.instance` label, so cleanup and adoption act only on this daemon's
/// own: a path (what the label held before) is the same for two daemons in different
/// mount namespaces or a reused AGENTRON_HOME, and guessable by anyone (issue #10).
enum DaemonIdentity {
    static let idBytes = 16

    /// The id in `path`, created (O_EXCL, 0600) when missing. Returns nil with a reason
    /// when it can neither read nor create one.
    static func load(path: String) -> Result<String, FileIO.Failure> {
        if let existing = read(path) { return .success(existing) }
        // The standard library's generator is the kernel's (getrandom) on Linux.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<idBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let id = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            // Another daemon start won the race: use its id.
            if errno == EEXIST, let existing = read(path) { return .success(existing) }
            return .failure(FileIO.Failure(path: path, step: "create", code: errno))
        }
        defer { close(fd) }
        let line = Array((id + "\n").utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
            let code = errno
            unlink(path)
            return .failure(FileIO.Failure(path: path, step: "write", code: code))
        }
        return .success(id)
    }

    /// A valid id (hex, the expected length) from the file, or nil.
    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingSpaces
        guard text.utf8.count == idBytes * 2, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        return text
    }
}
