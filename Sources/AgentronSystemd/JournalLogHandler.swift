import CSystemd
import Glibc
import Logging

/// A swift-log handler that writes structured entries to the systemd journal (issue #6):
/// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, and every metadata key as an
/// AGENTRON_* field, so `journalctl -u agentrond AGENTRON_SERVER=llama` finds one
/// server's lines. Use it only when stderr is the journal (`Journal.stderrIsJournal`).
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    public let label: String
    public let identifier: String
    private let sink: @Sendable ([JournalField]) -> Void

    /// Metadata keys with a documented field name (docs/systemd.md); other keys follow the
    /// same rule (`fieldName(forMetadataKey:)`), these are spelled out so they never drift.
    public static let wellKnownFields: [String: String] = [
        "server": "AGENTRON_SERVER",
        "engine": "AGENTRON_ENGINE",
        "pid": "AGENTRON_PID",
        "state": "AGENTRON_STATE",
    ]

    /// Journal field names are at most 64 characters (journald drops longer ones).
    static let maxFieldNameLength = 64

    public init(
        label: String, identifier: String = "agentrond", logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    ) {
        self.init(label: label, identifier: identifier, logLevel: logLevel, metadataProvider: metadataProvider) {
            JournalLogHandler.send($0)
        }
    }

    /// A handler that hands its fields to `sink` instead of the journal (tests).
    public init(
        label: String, identifier: String = "agentrond", logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping @Sendable ([JournalField]) -> Void
    ) {
        self.label = label
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Precedence as in StreamLogHandler: handler metadata, then the provider's, then the call's.
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        sink(
            Self.fields(
                level: event.level, message: event.message.description, metadata: merged, identifier: identifier,
                file: event.file, function: event.function, line: event.line))
    }

    /// The journal entry for one log call: a pure function, so the mapping is testable
    /// without a journal.
    public static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, identifier: String,
        file: String, function: String, line: UInt
    ) -> [JournalField] {
        let keys = metadata.keys.sorted()
        // `journalctl` shows MESSAGE only, so it carries the metadata too, as plain log
        // lines do; the fields are for filtering.
        var text = message
        for key in keys {
            guard let value = metadata[key] else { continue }
            text += " \(key)=\(value)"
        }
        var fields = [
            JournalField("MESSAGE", text),
            JournalField("PRIORITY", String(priority(level))),
            JournalField("SYSLOG_IDENTIFIER", identifier),
            JournalField("CODE_FILE", file),
            JournalField("CODE_LINE", String(line)),
            JournalField("CODE_FUNC", function),
        ]
        var seen = Set(fields.map(\.name))
        for key in keys {
            guard let value = metadata[key] else { continue }
            let name = fieldName(forMetadataKey: key)
            // Two keys that map to one name (`a-b`, `a.b`): the first in sorted order wins.
            guard seen.insert(name).inserted else { continue }
            fields.append(JournalField(name, "\(value)"))
        }
        return fields
    }

    /// `server` → AGENTRON_SERVER; any other key uppercased, every character that is not an
    /// ASCII letter or digit replaced by `_`, prefixed with AGENTRON_ (journal field names
    /// are uppercase letters, digits and `_`, and must not start with `_` or a digit).
    public static func fieldName(forMetadataKey key: String) -> String {
        if let known = wellKnownFields[key] { return known }
        var name = "AGENTRON_"
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): name.append(Character(Unicode.Scalar(byte - 32)))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                name.append(Character(Unicode.Scalar(byte)))
            default: name.append("_")
            }
        }
        return String(name.prefix(maxFieldNameLength))
    }

    /// syslog(3) priorities, which the journal uses: swift-log has no alert or emergency.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7  // LOG_DEBUG
        case .info: 6  // LOG_INFO
        case .notice: 5  // LOG_NOTICE
        case .warning: 4  // LOG_WARNING
        case .error: 3  // LOG_ERR
        case .critical: 2  // LOG_CRIT
        }
    }

    /// sd_journal_sendv(3): one iovec per "NAME=value" (values may hold newlines; libsystemd
    /// picks the binary-safe encoding). When the journal cannot be reached the line goes to
    /// stderr, which systemd also connects to the journal, so nothing is lost.
    static func send(_ fields: [JournalField]) {
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = buffer.count
            buffer += field.name.utf8
            buffer.append(UInt8(ascii: "="))
            buffer += field.value.utf8
            ranges.append(start..<buffer.count)
        }
        let result = buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -1 }
            let vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        if result < 0 {
            let message = fields.first { $0.name == "MESSAGE" }?.value ?? ""
            let bytes = Array((message + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }
}
