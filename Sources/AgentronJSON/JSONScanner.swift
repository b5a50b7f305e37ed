// A small strict-JSON scanner that remembers where every value lies, so a caller (the
// daemon's registrar) can replace, remove or append its own elements and leave every other byte of a shared file
// exactly as it was (issue #4: "nothing else in the file is ever harmed"). A decode and
// re-encode through JSONSerialization would reorder keys, reformat numbers and drop the
// owner's layout; splicing byte ranges does not.

/// Where and why a document is not strict JSON (RFC 8259).
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String
    public var description: String { "not valid JSON at line \(line), column \(column): \(message)" }
}

/// Recursive-descent parser over UTF-8 bytes. Strict: no comments, no trailing commas, no
/// single quotes, no unquoted keys (JSON5 is refused, not guessed at). A leading UTF-8 BOM
/// is allowed and kept.
public struct JSONScanner {
    /// Deeper documents are refused rather than risking the stack; provider files are a few levels deep.
    public static let maxDepth = 256

    let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONNode {
        var scanner = JSONScanner(bytes)
        return try scanner.document()
    }

    /// The members of a top-level object named in `names` (the last of a name given twice,
    /// as parsers do), found without building the rest: other values are only checked for
    /// their syntax, so a large request body costs one pass over its bytes. Nil when the
    /// document is not an object. Strings that are skipped are not checked for valid UTF-8.
    public static func members(_ names: [String], of bytes: [UInt8]) throws(JSONSyntaxError) -> [String: JSONNode]? {
        var scanner = JSONScanner(bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { scanner.index = 3 }
        scanner.skipWhitespace()
        guard scanner.peek == UInt8(ascii: "{") else {
            try scanner.skip(depth: 0)
            try scanner.end()
            return nil
        }
        let wanted = names.map { Array($0.utf8) }
        var found: [String: JSONNode] = [:]
        scanner.index += 1
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "}") {
            scanner.index += 1
            try scanner.end()
            return found
        }
        while true {
            scanner.skipWhitespace()
            guard scanner.peek == UInt8(ascii: "\"") else {
                throw scanner.error("unexpected \(scanner.describe(scanner.index)), expected a quoted member name")
            }
            let keyStart = scanner.index
            try scanner.skipString()
            let rawKey = bytes[(keyStart + 1)..<(scanner.index - 1)]
            scanner.skipWhitespace()
            guard scanner.peek == UInt8(ascii: ":") else {
                throw scanner.error("unexpected \(scanner.describe(scanner.index)), expected ':'")
            }
            scanner.index += 1
            scanner.skipWhitespace()
            if let match = wanted.firstIndex(where: { rawKey.elementsEqual($0) }) {
                found[names[match]] = try scanner.value(depth: 1)
            } else {
                try scanner.skip(depth: 1)
            }
            scanner.skipWhitespace()
            switch scanner.peek {
            case UInt8(ascii: ","):
                scanner.index += 1
            case UInt8(ascii: "}"):
                scanner.index += 1
                try scanner.end()
                return found
            default:
                throw scanner.error("unexpected \(scanner.describe(scanner.index)), expected ',' or '}'")
            }
        }
    }

    /// True when the bytes hold nothing but whitespace (an empty file is not a document).
    public static func isBlank(_ bytes: [UInt8]) -> Bool {
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

    /// Nothing but whitespace may follow the document.
    private mutating func end() throws(JSONSyntaxError) {
        skipWhitespace()
        guard index == bytes.count else { throw error("unexpected \(describe(index)) after the document") }
    }

    /// Steps over one value, checking its syntax and building nothing.
    private mutating func skip(depth: Int) throws(JSONSyntaxError) {
        guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) levels deep") }
        guard let byte = peek else { throw error("unexpected end of file, expected a value") }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = byte == UInt8(ascii: "{")
            index += 1
            skipWhitespace()
            if peek == close {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                if isObject {
                    guard peek == UInt8(ascii: "\"") else {
                        throw error("unexpected \(describe(index)), expected a quoted member name")
                    }
                    try skipString()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ":") else { throw error("unexpected \(describe(index)), expected ':'") }
                    index += 1
                    skipWhitespace()
                }
                try skip(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    index += 1
                } else if peek == close {
                    index += 1
                    return
                } else {
                    throw error("unexpected \(describe(index)), expected ',' or '\(Character(Unicode.Scalar(close)))'")
                }
            }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber()
        default: throw error("unexpected \(describe(index)), expected a value")
        }
    }

    /// Steps over a string: its escapes and control characters are checked, nothing is decoded.
    private mutating func skipString() throws(JSONSyntaxError) {
        let open = index
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return
            }
            if byte < 0x20 { throw error("control character in a string (write it as an escape such as \\n)") }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { break }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    index += 2
                    _ = try hex4()
                default:
                    throw error("invalid escape \\\(describe(index + 1))")
                }
                continue
            }
            index += 1
        }
        throw error("unterminated string", at: open)
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
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
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
        try skipNumber()
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func skipNumber() throws(JSONSyntaxError) {
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
            guard let byte = peek, isDigit(byte) else {
                throw error("invalid number (digits expected in the exponent)")
            }
            while let byte = peek, isDigit(byte) { index += 1 }
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let count = word.utf8CodeUnitCount
        let matches = word.withUTF8Buffer { expected in
            bytes.count - index >= count && bytes[index..<index + count].elementsEqual(expected)
        }
        guard matches else { throw error("unexpected \(describe(index)), expected a value") }
        index += count
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
