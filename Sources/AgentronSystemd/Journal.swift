import Glibc

/// Whether and how agentrond talks to the systemd journal.
public enum Journal {
    /// Whether stderr is connected to the journal: systemd sets JOURNAL_STREAM to the
    /// "device:inode" of the stream it gave us (systemd.exec(5)). The numbers must match
    /// stderr itself: a child whose stderr was redirected inherits the variable but not
    /// the stream, and must keep writing plain lines.
    public static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return matches(journalStream: value, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// JOURNAL_STREAM is two decimal numbers, "device:inode".
    public static func matches(journalStream: String, device: UInt64, inode: UInt64) -> Bool {
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let streamDevice = UInt64(parts[0]), let streamInode = UInt64(parts[1]) else {
            return false
        }
        return streamDevice == device && streamInode == inode
    }
}

/// One journal field: an uppercase name and its value (any bytes, newlines included).
public struct JournalField: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name)=\(value)" }
}
