import AgentronCore
import CYAML

// A small typed YAML tree loaded with libyaml's event API. Profiles are read from it
// (Profile+YAML.swift); it keeps every node's position so errors can point at the line.
// The event API (rather than libyaml's document API) lets us refuse anchors and aliases
// where they appear and stop at a second document without building it.

/// One node of a YAML document, with its 1-based position in the source.
public struct YAMLNode: Sendable, Equatable {
    public enum ScalarStyle: Sendable, Equatable {
        case plain
        case singleQuoted
        case doubleQuoted
        case literal
        case folded
    }

    /// A mapping entry. Keys are nodes too, so they keep their own position and style.
    public struct Pair: Sendable, Equatable {
        public var key: YAMLNode
        public var value: YAMLNode

        public init(key: YAMLNode, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    public enum Content: Sendable, Equatable {
        case scalar(String, ScalarStyle)
        /// Entries in source order; duplicate keys are kept (the reader decides what they mean).
        case mapping([Pair])
        case sequence([YAMLNode])
    }

    /// A plain scalar's meaning (AgentronCore's YAMLScalarValue: rendering needs it too).
    public typealias ScalarValue = YAMLScalarValue

    public var content: Content
    /// The explicit tag, resolved by libyaml (`!!str` → `tag:yaml.org,2002:str`); nil when none.
    public var tag: String?
    public var line: Int
    public var column: Int

    public init(content: Content, tag: String? = nil, line: Int, column: Int) {
        self.content = content
        self.tag = tag
        self.line = line
        self.column = column
    }

    /// The text of a scalar node; nil for mappings and sequences.
    public var scalarText: String? {
        if case .scalar(let text, _) = content { return text }
        return nil
    }

    /// True for a scalar written quoted or as a block (`|`, `>`), or tagged `!!str`:
    /// its text is a string whatever it looks like.
    public var isQuoted: Bool {
        guard case .scalar(_, let style) = content else { return false }
        return style != .plain || tag != nil
    }

    /// The scalar's typed value: quoted scalars are strings, plain ones are resolved from
    /// their text. Nil for mappings and sequences.
    public var scalarValue: ScalarValue? {
        guard case .scalar(let text, _) = content else { return nil }
        return isQuoted ? .string(text) : YAMLNode.resolvePlain(text)
    }

    /// What a plain scalar means: `~`/`null`/empty, booleans, decimal integers, floats, or a string.
    public static func resolvePlain(_ text: String) -> ScalarValue {
        ScalarValue.resolvePlain(text)
    }

    /// `[-+]?[0-9]+`
    static func isDecimalInteger(_ text: String) -> Bool {
        ScalarValue.isDecimalInteger(text)
    }

    /// A short phrase for error messages: "a mapping", "a list", "the number 5", `the string "x"`.
    public var kindDescription: String {
        switch content {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let text, _):
            switch scalarValue {
            case .null, .none: return "nothing"
            case .bool(let value): return "the boolean \(value)"
            case .int, .float: return "the number \(text)"
            case .string(let string): return "the string \(YAMLNode.quoteForMessage(string))"
            }
        }
    }

    /// `"text"` for messages, escaped and shortened so one error stays one line.
    public static func quoteForMessage(_ text: String, limit: Int = 60) -> String {
        var out = "\""
        for (index, char) in text.enumerated() {
            if index == limit {
                out += "…"
                break
            }
            switch char {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out.append(char)
            }
        }
        return out + "\""
    }
}

/// Why a YAML text could not be loaded, with the 1-based position libyaml reported.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// libyaml refused the text; `message` carries its problem text.
        case syntax
        /// No document at all: an empty file, or only comments.
        case empty
        case multipleDocuments
        case anchor
        case alias
        /// A tag other than the standard ones (`!!str`, `!!map`, `!!seq`).
        case unsupportedTag
        case tooDeep
    }

    public var reason: Reason
    public var message: String
    public var line: Int
    public var column: Int

    public init(reason: Reason, message: String, line: Int, column: Int) {
        self.reason = reason
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column): \(message)" }
}

extension YAMLNode {
    /// Nesting deeper than this is refused: profiles are two levels deep, and the recursive
    /// builder must not exhaust the stack on hostile input.
    public static let maxDepth = 64

    /// Loads exactly one YAML document. Empty input, a second document, anchors, aliases
    /// and unknown tags are errors, each with its position.
    public static func load(_ text: String) throws(YAMLError) -> YAMLNode {
        let reader = try EventReader(text: text)
        var event = try reader.next()
        guard event.kind == .streamStart else { throw reader.unexpected(event) }
        event = try reader.next()
        if event.kind == .streamEnd {
            // Reported at 1:1 rather than at the end of a comment-only file: the whole file is the problem.
            throw YAMLError(reason: .empty, message: "the file is empty (no YAML document)", line: 1, column: 1)
        }
        guard event.kind == .documentStart else { throw reader.unexpected(event) }
        let root = try reader.node(from: try reader.next(), depth: 0)
        event = try reader.next()
        guard event.kind == .documentEnd else { throw reader.unexpected(event) }
        event = try reader.next()
        if event.kind == .documentStart {
            throw YAMLError(
                reason: .multipleDocuments,
                message: "a second YAML document starts here; keep one document per file (remove this ---)",
                line: event.line, column: event.column)
        }
        guard event.kind == .streamEnd else { throw reader.unexpected(event) }
        return root
    }
}

/// One libyaml event copied into Swift values (libyaml's own is freed right away).
private struct Event {
    enum Kind {
        case streamStart, streamEnd, documentStart, documentEnd
        case scalar, sequenceStart, sequenceEnd, mappingStart, mappingEnd, alias, none
    }

    var kind: Kind
    var line: Int
    var column: Int
    var value = ""
    var style = YAMLNode.ScalarStyle.plain
    var tag: String?
    var anchor: String?
}

/// Owns a libyaml parser and its input. The parser lives at a fixed heap address because
/// libyaml's string reader keeps a pointer back to the parser.
private final class EventReader {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let input: UnsafeMutableBufferPointer<UInt8>

    init(text: String) throws(YAMLError) {
        let bytes = Array(text.utf8)
        parser = .allocate(capacity: 1)
        parser.initialize(to: yaml_parser_t())
        input = .allocate(capacity: max(bytes.count, 1))
        _ = input.initialize(from: bytes)
        guard yaml_parser_initialize(parser) == 1, let base = input.baseAddress else {
            // Only fails when malloc does; the parser is then still all zeroes.
            input.deallocate()
            parser.deallocate()
            throw YAMLError(reason: .syntax, message: "libyaml could not start (out of memory)", line: 1, column: 1)
        }
        yaml_parser_set_input_string(parser, base, bytes.count)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
        input.deallocate()
    }

    func next() throws(YAMLError) -> Event {
        var raw = yaml_event_t()
        guard yaml_parser_parse(parser, &raw) == 1 else { throw syntaxError() }
        defer { yaml_event_delete(&raw) }
        var event = Event(
            kind: .none, line: Int(raw.start_mark.line) + 1, column: Int(raw.start_mark.column) + 1)
        switch raw.type {
        case YAML_STREAM_START_EVENT: event.kind = .streamStart
        case YAML_STREAM_END_EVENT: event.kind = .streamEnd
        case YAML_DOCUMENT_START_EVENT: event.kind = .documentStart
        case YAML_DOCUMENT_END_EVENT: event.kind = .documentEnd
        case YAML_ALIAS_EVENT:
            // For an alias, `anchor` is the name it refers to.
            event.kind = .alias
            event.anchor = Self.string(raw.data.alias.anchor)
        case YAML_SCALAR_EVENT:
            let scalar = raw.data.scalar
            event.kind = .scalar
            if let value = scalar.value {
                event.value = String(
                    decoding: UnsafeBufferPointer(start: value, count: Int(scalar.length)), as: UTF8.self)
            }
            event.anchor = Self.string(scalar.anchor)
            event.tag = Self.string(scalar.tag)
            switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: event.style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: event.style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: event.style = .literal
            case YAML_FOLDED_SCALAR_STYLE: event.style = .folded
            default: event.style = .plain
            }
        case YAML_SEQUENCE_START_EVENT:
            event.kind = .sequenceStart
            event.anchor = Self.string(raw.data.sequence_start.anchor)
            event.tag = Self.string(raw.data.sequence_start.tag)
        case YAML_SEQUENCE_END_EVENT: event.kind = .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            event.kind = .mappingStart
            event.anchor = Self.string(raw.data.mapping_start.anchor)
            event.tag = Self.string(raw.data.mapping_start.tag)
        case YAML_MAPPING_END_EVENT: event.kind = .mappingEnd
        default: event.kind = .none
        }
        return event
    }

    /// Builds the node that `first` opens, reading the events of its children.
    func node(from first: Event, depth: Int) throws(YAMLError) -> YAMLNode {
        guard depth < YAMLNode.maxDepth else {
            throw YAMLError(
                reason: .tooDeep, message: "nesting deeper than \(YAMLNode.maxDepth) levels; flatten the document",
                line: first.line, column: first.column)
        }
        if first.kind == .alias {
            throw YAMLError(
                reason: .alias,
                message: "aliases (*\(first.anchor ?? "")) are not supported; write the value out in full",
                line: first.line, column: first.column)
        }
        if let anchor = first.anchor {
            throw YAMLError(
                reason: .anchor,
                message: "anchors (&\(anchor)) are not supported; write the value out in full",
                line: first.line, column: first.column)
        }
        switch first.kind {
        case .scalar:
            let tag = try checkedTag(first, allowed: Self.stringTags)
            return YAMLNode(
                content: .scalar(first.value, first.style), tag: tag, line: first.line, column: first.column)
        case .sequenceStart:
            _ = try checkedTag(first, allowed: ["tag:yaml.org,2002:seq"])
            var items: [YAMLNode] = []
            while true {
                let event = try next()
                if event.kind == .sequenceEnd { break }
                items.append(try node(from: event, depth: depth + 1))
            }
            return YAMLNode(content: .sequence(items), line: first.line, column: first.column)
        case .mappingStart:
            _ = try checkedTag(first, allowed: ["tag:yaml.org,2002:map"])
            var pairs: [YAMLNode.Pair] = []
            while true {
                let event = try next()
                if event.kind == .mappingEnd { break }
                let key = try node(from: event, depth: depth + 1)
                let value = try node(from: try next(), depth: depth + 1)
                pairs.append(YAMLNode.Pair(key: key, value: value))
            }
            return YAMLNode(content: .mapping(pairs), line: first.line, column: first.column)
        default:
            throw unexpected(first)
        }
    }

    /// `!!str` and the non-specific `!` both make a scalar a string; nothing else is needed
    /// in a profile, and silently ignoring a tag like `!!binary` would misread the value.
    private static let stringTags: Set<String> = ["tag:yaml.org,2002:str", "!"]

    private func checkedTag(_ event: Event, allowed: Set<String>) throws(YAMLError) -> String? {
        guard let tag = event.tag else { return nil }
        guard allowed.contains(tag) else {
            let shown = tag.hasPrefix("tag:yaml.org,2002:") ? "!!" + tag.dropFirst("tag:yaml.org,2002:".count) : tag
            throw YAMLError(
                reason: .unsupportedTag, message: "YAML tag \(shown) is not supported here; remove it",
                line: event.line, column: event.column)
        }
        return tag
    }

    /// libyaml never emits events out of order; this guards the builder all the same.
    func unexpected(_ event: Event) -> YAMLError {
        YAMLError(
            reason: .syntax, message: "unexpected YAML event \(event.kind); check the document structure",
            line: event.line, column: event.column)
    }

    /// libyaml's problem text and position, e.g. `mapping values are not allowed in this context`.
    private func syntaxError() -> YAMLError {
        let state = parser.pointee
        var message = state.problem.map { String(cString: $0) } ?? "invalid YAML"
        if let context = state.context {
            // e.g. "while scanning a quoted scalar": where the unclosed thing began.
            let start = state.context_mark
            message += " (\(String(cString: context)) at line \(start.line + 1), column \(start.column + 1))"
        }
        // Reader errors (bad encoding, control characters) carry no mark: use where it stopped.
        let mark = state.error == YAML_READER_ERROR ? state.mark : state.problem_mark
        return YAMLError(
            reason: .syntax, message: message, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
