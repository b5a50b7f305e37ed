import AgentronConfig
import AgentronCore
import Glibc

/// A random id per daemon, kept in its state directory (`instance-id`). Containers carry
/// it as the `agentron.instance` label, so cleanup and adoption act only on this daemon's
/// own: a path (what the label held before) is the same for two daemons in different
/// mount namespaces or a reused AGENTRON_HOME, and guessable by anyone (issue #10).
enum DaemonIdentity {
    static let idBytes = 16

    /// The id in `path`; made and written (atomically, 0600) when the file is missing or
    /// not a valid id (a hand edit, a crash mid-write): a bad file must not keep the daemon
    /// from starting. Only one daemon runs per state directory (its lock is taken first).
    static func load(path: String) -> Result<String, FileIO.Failure> {
        if let existing = read(path) { return .success(existing) }
        // The standard library's generator is the kernel's (getrandom) on Linux.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<idBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let id = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        do {
            try FileIO.writeAtomically(Array((id + "\n").utf8), to: path, mode: 0o600, owner: nil)
        } catch {
            return .failure(error)
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
        guard text.utf8.count == idBytes * 2,
            text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) })
        else {
            return nil
        }
        return text
    }
}
