// A small strict-JSON scanner that remembers where every value lies, so the registrar can
// replace, remove or append its own elements and leave every other byte of a shared file
// exactly as it was (issue #4: "nothing else in the file is ever harmed"). A decode and
// re-encode through JSONSerialization would reorder keys, reformat numbers and drop the
// owner's layout; splicing byte ranges does not.

/// A decoded JSON value. Numbers keep their source text: nothing is rounded or reformatted.
indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// Semantic equality: object members compare by key, in any order.
    func same(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.same(as: $1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let match = b.first(where: { $0.key == key }), value.same(as: match.value) else { return false }
            }
            return true
        default: return false
        }
    }

    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}

/// A value in a document, with the byte range it occupies and, for arrays and objects, the
/// ranges of their elements or members.
struct JSONNode: Sendable {
    enum Kind: Sendable {
        case scalar(JSONValue)
        case array
        case object
    }

    /// One element of an array, or one member of an object (`range` then starts at the key).
    struct Item: Sendable {
        var key: String?
        var range: Range<Int>
        var node: JSONNode
    }

    var kind: Kind
    /// From the first byte of the value to one past its last (`[`…`]`, `{`…`}`, `"`…`"`).
    var range: Range<Int>
    var items: [Item]

    var value: JSONValue {
        switch kind {
        case .scalar(let value): value
        case .array: .array(items.map(\.node.value))
        case .object: .object(items.map { (key: $0.key ?? "", value: $0.node.value) })
        }
    }

    var isObject: Bool {
        if case .object = kind { return true }
        return false
    }

    var isArray: Bool {
        if case .array = kind { return true }
        return false
    }

    /// The members named `key` (JSON allows duplicates; callers decide what they mean).
    func members(named key: String) -> [Item] {
        items.filter { $0.key == key }
    }
}

/// Where and why a document is not strict JSON (RFC 8259).
struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    var line: Int
    var column: Int
    var message: String
    var description: String { "not valid JSON at line \(line), column \(column): \(message)" }
}

/// Recursive-descent parser over UTF-8 bytes. Strict: no comments, no trailing commas, no
/// single quotes, no unquoted keys (JSON5 is refused, not guessed at). A leading UTF-8 BOM
/// is allowed and kept.
struct JSONScanner {
    /// Deeper documents are refused rather than risking the stack; provider files are a few levels deep.
    static let maxDepth = 256

    let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONNode {
        var scanner = JSONScanner(bytes)
        return try scanner.document()
    }

    /// True when the bytes hold nothing but whitespace (an empty file is not a document).
    static func isBlank(_ bytes: [UInt8]) -> Bool {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        return body.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
    }

    private mutating func document() throws(JSONSyntaxError) -> JSONNode {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        let node = try value(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected \(describe(index)) after the document") }
        return node
    }

    private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) levels deep") }
        guard index < bytes.count else { throw error("unexpected end of file, expected a value") }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""):
            let text = try string()
            return JSONNode(kind: .scalar(.string(text)), range: start..<index, items: [])
        case UInt8(ascii: "t"):
            try literal("true")
            return JSONNode(kind: .scalar(.bool(true)), range: start..<index, items: [])
        case UInt8(ascii: "f"):
            try literal("false")
            return JSONNode(kind: .scalar(.bool(false)), range: start..<index, items: [])
        case UInt8(ascii: "n"):
            try literal("null")
            return JSONNode(kind: .scalar(.null), range: start..<index, items: [])
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let text = try number()
            return JSONNode(kind: .scalar(.number(text)), range: start..<index, items: [])
        default:
            throw error("unexpected \(describe(index)), expected a value")
        }
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        let start = index
        index += 1
        var items: [JSONNode.Item] = []
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return JSONNode(kind: .object, range: start..<index, items: [])
        }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else {
                throw error("unexpected \(describe(index)), expected a quoted member name")
            }
            let keyStart = index
            let key = try string()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("unexpected \(describe(index)), expected ':'") }
            index += 1
            skipWhitespace()
            let node = try value(depth: depth + 1)
            items.append(JSONNode.Item(key: key, range: keyStart..<node.range.upperBound, node: node))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                return JSONNode(kind: .object, range: start..<index, items: items)
            default:
                throw error("unexpected \(describe(index)), expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONNode {
        let start = index
        index += 1
        var items: [JSONNode.Item] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return JSONNode(kind: .array, range: start..<index, items: [])
        }
        while true {
            skipWhitespace()
            let node = try value(depth: depth + 1)
            items.append(JSONNode.Item(key: nil, range: node.range, node: node))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return JSONNode(kind: .array, range: start..<index, items: items)
            default:
                throw error("unexpected \(describe(index)), expected ',' or ']'")
            }
        }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        let open = index
        index += 1
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flushRun(_ end: Int) throws(JSONSyntaxError) {
            guard runStart < end else { return }
            guard let text = String(validating: bytes[runStart..<end], as: UTF8.self) else {
                throw error("invalid UTF-8 in the string that starts at \(position(open))", at: runStart)
            }
            scalars.append(contentsOf: text.unicodeScalars)
        }
        while true {
            guard index < bytes.count else { throw error("unterminated string", at: open) }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                try flushRun(index)
                index += 1
                return String(scalars)
            }
            if byte < 0x20 {
                throw error("control character in a string (write it as an escape such as \\n)")
            }
            if byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            try flushRun(index)
            index += 1
            guard index < bytes.count else { throw error("unterminated string", at: open) }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                let first = try hex4()
                if (0xD800...0xDBFF).contains(first) {
                    // A high surrogate must be followed by an escaped low one.
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired surrogate escape") }
                    index += 2
                    let second = try hex4()
                    guard (0xDC00...0xDFFF).contains(second),
                        let scalar = Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                    else { throw error("unpaired surrogate escape") }
                    scalars.append(scalar)
                } else {
                    guard let scalar = Unicode.Scalar(first) else { throw error("unpaired surrogate escape") }
                    scalars.append(scalar)
                }
            default:
                throw error("invalid escape \\\(describe(index - 1))", at: index - 2)
            }
            runStart = index
        }
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("unterminated \\u escape") }
        var result: UInt32 = 0
        for byte in bytes[index..<index + 4] {
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape (four hex digits expected)")
            }
            result = result * 16 + digit
        }
        index += 4
        return result
    }

    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = index
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, isDigit(first) else { throw error("invalid number") }
        index += 1
        if first == UInt8(ascii: "0"), let next = peek, isDigit(next) {
            throw error("invalid number (leading zeros are not JSON)")
        }
        while let byte = peek, isDigit(byte) { index += 1 }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek, isDigit(byte) else { throw error("invalid number (digits expected after '.')") }
            while let byte = peek, isDigit(byte) { index += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek, isDigit(byte) else { throw error("invalid number (digits expected in the exponent)") }
            while let byte = peek, isDigit(byte) { index += 1 }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let expected = word.withUTF8Buffer { Array($0) }
        guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("unexpected \(describe(index)), expected a value")
        }
        index += expected.count
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private func describe(_ at: Int) -> String {
        guard at < bytes.count else { return "end of file" }
        let byte = bytes[at]
        if byte == UInt8(ascii: "/") { return "'/' (comments are JSON5, not JSON)" }
        if byte == UInt8(ascii: "'") { return "\"'\" (single quotes are JSON5, not JSON)" }
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16))"
    }

    private func position(_ at: Int) -> String {
        let (line, column) = lineAndColumn(at)
        return "line \(line), column \(column)"
    }

    private func lineAndColumn(_ at: Int) -> (Int, Int) {
        var line = 1
        var lineStart = 0
        for (offset, byte) in bytes[..<min(at, bytes.count)].enumerated() where byte == 0x0A {
            line += 1
            lineStart = offset + 1
        }
        return (line, at - lineStart + 1)
    }

    private func error(_ message: String, at: Int? = nil) -> JSONSyntaxError {
        let (line, column) = lineAndColumn(at ?? index)
        return JSONSyntaxError(line: line, column: column, message: message)
    }
}

// MARK: Rendering

/// Writes values the way agentron writes its own entries: keys sorted, `": "` after keys,
/// nested lines indented by `unit` (matched to the file's own indentation by the caller).
enum JSONRender {
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `value` as text whose first line starts where the caller already is and whose later
    /// lines start with `indent` (+ `unit` per level); one line when `multiline` is false.
    static func render(_ value: JSONValue, indent: String, unit: String, multiline: Bool) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return quote(text)
        case .array(let elements):
            if elements.isEmpty { return "[]" }
            let inner = indent + unit
            let parts = elements.map { render($0, indent: inner, unit: unit, multiline: multiline) }
            return multiline
                ? "[\n" + parts.map { inner + $0 }.joined(separator: ",\n") + "\n" + indent + "]"
                : "[" + parts.joined(separator: ", ") + "]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            let inner = indent + unit
            let parts = members.map { quote($0.key) + ": " + render($0.value, indent: inner, unit: unit, multiline: multiline) }
            return multiline
                ? "{\n" + parts.map { inner + $0 }.joined(separator: ",\n") + "\n" + indent + "}"
                : "{" + parts.joined(separator: ", ") + "}"
        }
    }

    /// Members with their keys sorted (docs/conventions.md rule 8: stable writes).
    static func sortedObject(_ members: [(key: String, value: JSONValue)]) -> JSONValue {
        .object(members.sorted { $0.key < $1.key })
    }
}

// MARK: Splicing

/// Edits the items of one array or object in a document and returns the new document. Bytes
/// outside the edited items are copied as they were: other items, their separators, the
/// whitespace and everything outside the container.
struct JSONSplice {
    /// Renders an item (a value, or `"key": value` for an object member) at a given
    /// indentation: `indent` is the current line's, `unit` one level, `multiline` whether
    /// the container lays its items out one per line.
    typealias Render = @Sendable (_ indent: String, _ unit: String, _ multiline: Bool) -> String

    enum Edit: Sendable {
        case keep
        case remove
        case replace(Render)
    }

    let bytes: [UInt8]
    let container: JSONNode
    /// The indentation step when the container itself cannot tell (it is empty or on one
    /// line): the caller passes the document's, from `indentUnit(_:container:)` on the root.
    var fallbackUnit = "  "

    /// `edits` has one entry per existing item; `append` adds items at the end.
    func apply(edits: [Edit], append: [Render]) -> [UInt8] {
        precondition(edits.count == container.items.count, "one edit per item")
        let open = container.range.lowerBound
        let close = container.range.upperBound - 1
        let items = container.items
        let unit = indentUnit()
        let lineIndent = Self.lineIndent(bytes, at: open)

        // What precedes each existing item: the opening whitespace for the first, the
        // separator (comma and whitespace) for the others.
        var leading: [ArraySlice<UInt8>] = []
        for (offset, item) in items.enumerated() {
            let from = offset == 0 ? open + 1 : items[offset - 1].range.upperBound
            leading.append(bytes[from..<item.range.lowerBound])
        }
        let multiline = items.isEmpty ? true : leading.contains { $0.contains(0x0A) }
        let childIndent: String =
            items.isEmpty || !multiline
            ? lineIndent + unit
            : Self.indentAfterLastNewline(leading.last { $0.contains(0x0A) } ?? [])

        var out: [([UInt8]?, [UInt8])] = []  // (leading, item text)
        for (offset, item) in items.enumerated() {
            switch edits[offset] {
            case .remove: continue
            case .keep: out.append((Array(leading[offset]), Array(bytes[item.range])))
            case .replace(let render):
                let indent = multiline ? Self.indentAfterLastNewline(leading[offset]) : childIndent
                out.append((Array(leading[offset]), Array(render(indent, unit, multiline).utf8)))
            }
        }
        for render in append {
            out.append((nil, Array(render(childIndent, unit, multiline).utf8)))
        }

        var result = Array(bytes[...open])
        let appendSeparator = Array((multiline ? ",\n" + childIndent : ", ").utf8)
        for (position, (lead, text)) in out.enumerated() {
            if position == 0 {
                // The first item takes the container's opening whitespace, whoever it is.
                result += items.isEmpty ? Array(("\n" + childIndent).utf8) : Array(leading[0])
            } else {
                result += lead ?? appendSeparator
            }
            result += text
        }
        if !out.isEmpty {
            if let last = items.last {
                result += bytes[last.range.upperBound..<close]
            } else {
                result += Array(("\n" + lineIndent).utf8)
            }
        }
        result += bytes[close...]
        return result
    }

    /// One level of indentation as this document writes it: the first item's indentation
    /// beyond its container's line, else two spaces.
    func indentUnit() -> String {
        Self.indentUnit(bytes, container: container) ?? fallbackUnit
    }

    static func indentUnit(_ bytes: [UInt8], container: JSONNode) -> String? {
        guard let first = container.items.first else { return nil }
        let leading = bytes[(container.range.lowerBound + 1)..<first.range.lowerBound]
        guard leading.contains(0x0A) else { return nil }
        let child = indentAfterLastNewline(leading)
        let line = lineIndent(bytes, at: container.range.lowerBound)
        guard child.hasPrefix(line), child.count > line.count else { return nil }
        return String(child.dropFirst(line.count))
    }

    /// The leading spaces and tabs of the line that holds byte `at`.
    static func lineIndent(_ bytes: [UInt8], at: Int) -> String {
        var start = at
        while start > 0, bytes[start - 1] != 0x0A { start -= 1 }
        var end = start
        while end < bytes.count, bytes[end] == 0x20 || bytes[end] == 0x09 { end += 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// The spaces and tabs that follow the last newline of `text`.
    static func indentAfterLastNewline(_ text: ArraySlice<UInt8>) -> String {
        guard let newline = text.lastIndex(of: 0x0A) else { return "" }
        var end = newline + 1
        while end < text.endIndex, text[end] == 0x20 || text[end] == 0x09 { end += 1 }
        return String(decoding: text[(newline + 1)..<end], as: UTF8.self)
    }
}
