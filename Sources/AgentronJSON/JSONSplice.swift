// Writing JSON the way agentron writes its own entries, and splicing rendered items into a
// document so that every byte outside them stays as it was (JSONScanner.swift).

// MARK: Rendering

/// Writes values the way agentron writes its own entries: keys sorted, `": "` after keys,
/// nested lines indented by `unit` (matched to the file's own indentation by the caller).
public enum JSONRender {
    public static func quote(_ text: String) -> String {
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
    public static func render(_ value: JSONValue, indent: String, unit: String, multiline: Bool) -> String {
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
            let parts = members.map {
                quote($0.key) + ": " + render($0.value, indent: inner, unit: unit, multiline: multiline)
            }
            return multiline
                ? "{\n" + parts.map { inner + $0 }.joined(separator: ",\n") + "\n" + indent + "}"
                : "{" + parts.joined(separator: ", ") + "}"
        }
    }

    /// Members with their keys sorted (docs/conventions.md rule 8: stable writes).
    public static func sortedObject(_ members: [(key: String, value: JSONValue)]) -> JSONValue {
        .object(members.sorted { $0.key < $1.key })
    }
}

// MARK: Splicing

/// Edits the items of one array or object in a document and returns the new document. Bytes
/// outside the edited items are copied as they were: other items, their separators, the
/// whitespace and everything outside the container.
public struct JSONSplice {
    /// Renders an item (a value, or `"key": value` for an object member) at a given
    /// indentation: `indent` is the current line's, `unit` one level, `multiline` whether
    /// the container lays its items out one per line.
    public typealias Render = @Sendable (_ indent: String, _ unit: String, _ multiline: Bool) -> String

    public enum Edit: Sendable {
        case keep
        case remove
        case replace(Render)
    }

    public let bytes: [UInt8]
    public let container: JSONNode
    /// The indentation step when the container itself cannot tell (it is empty or on one
    /// line): the caller passes the document's, from `indentUnit(_:container:)` on the root.
    public var fallbackUnit = "  "

    public init(bytes: [UInt8], container: JSONNode) {
        self.bytes = bytes
        self.container = container
    }

    /// `edits` has one entry per existing item; `append` adds items at the end.
    public func apply(edits: [Edit], append: [Render]) -> [UInt8] {
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
    public func indentUnit() -> String {
        Self.indentUnit(bytes, container: container) ?? fallbackUnit
    }

    public static func indentUnit(_ bytes: [UInt8], container: JSONNode) -> String? {
        guard let first = container.items.first else { return nil }
        let leading = bytes[(container.range.lowerBound + 1)..<first.range.lowerBound]
        guard leading.contains(0x0A) else { return nil }
        let child = indentAfterLastNewline(leading)
        let line = lineIndent(bytes, at: container.range.lowerBound)
        guard child.hasPrefix(line), child.count > line.count else { return nil }
        return String(child.dropFirst(line.count))
    }

    /// The leading spaces and tabs of the line that holds byte `at`.
    public static func lineIndent(_ bytes: [UInt8], at: Int) -> String {
        var start = at
        while start > 0, bytes[start - 1] != 0x0A { start -= 1 }
        var end = start
        while end < bytes.count, bytes[end] == 0x20 || bytes[end] == 0x09 { end += 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// The spaces and tabs that follow the last newline of `text`.
    public static func indentAfterLastNewline(_ text: ArraySlice<UInt8>) -> String {
        guard let newline = text.lastIndex(of: 0x0A) else { return "" }
        var end = newline + 1
        while end < text.endIndex, text[end] == 0x20 || text[end] == 0x09 { end += 1 }
        return String(decoding: text[(newline + 1)..<end], as: UTF8.self)
    }
}
