// The values a scanned document is made of (JSONScanner.swift): decoded values that keep
// numbers as written, and nodes that remember the bytes each value occupies.

/// A decoded JSON value. Numbers keep their source text: nothing is rounded or reformatted.
public indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// Semantic equality: object members compare by key, in any order.
    public func same(as other: JSONValue) -> Bool {
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

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}

/// A value in a document, with the byte range it occupies and, for arrays and objects, the
/// ranges of their elements or members.
public struct JSONNode: Sendable {
    public enum Kind: Sendable {
        case scalar(JSONValue)
        case array
        case object
    }

    /// One element of an array, or one member of an object (`range` then starts at the key).
    public struct Item: Sendable {
        public var key: String?
        public var range: Range<Int>
        public var node: JSONNode

        public init(key: String?, range: Range<Int>, node: JSONNode) {
            self.key = key
            self.range = range
            self.node = node
        }
    }

    public var kind: Kind
    /// From the first byte of the value to one past its last (`[`…`]`, `{`…`}`, `"`…`"`).
    public var range: Range<Int>
    public var items: [Item]

    public init(kind: Kind, range: Range<Int>, items: [Item]) {
        self.kind = kind
        self.range = range
        self.items = items
    }

    public var value: JSONValue {
        switch kind {
        case .scalar(let value): value
        case .array: .array(items.map(\.node.value))
        case .object: .object(items.map { (key: $0.key ?? "", value: $0.node.value) })
        }
    }

    public var isObject: Bool {
        if case .object = kind { return true }
        return false
    }

    public var isArray: Bool {
        if case .array = kind { return true }
        return false
    }

    /// The members named `key` (JSON allows duplicates; callers decide what they mean).
    public func members(named key: String) -> [Item] {
        items.filter { $0.key == key }
    }
}
