import AgentronCore

/// A manifest as a tree with its keys in the order they are written (kubectl's order:
/// apiVersion, kind, metadata, spec), and its block-style YAML.
///
/// Written by hand rather than with libyaml's emitter: the whole job is choosing each
/// scalar's style, and the emitter would write the string "8192" plain, which Kubernetes
/// reads back as a number (an `args` entry must be a string).
public indirect enum Manifest: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([Manifest])
    case map([(String, Manifest)])

    public static func == (lhs: Manifest, rhs: Manifest) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.list(let a), .list(let b)): a == b
        case (.map(let a), .map(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        default: false
        }
    }

    /// The value at a path of map keys and list indices, for tests and callers that check
    /// one field: `manifest["spec", "replicas"]`.
    public subscript(_ path: Any...) -> Manifest? {
        var node: Manifest? = self
        for step in path {
            switch (node, step) {
            case (.map(let pairs), let key as String): node = pairs.first { $0.0 == key }?.1
            case (.list(let items), let index as Int): node = items.indices.contains(index) ? items[index] : nil
            default: return nil
            }
        }
        return node
    }

    public var text: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var number: Int? {
        if case .int(let value) = self { return value }
        return nil
    }

    public var items: [Manifest] {
        if case .list(let items) = self { return items }
        return []
    }

    // MARK: YAML

    /// The manifest as one YAML document (without the `---` that separates documents).
    public var yaml: String {
        var out = ""
        Self.write(self, indent: "", into: &out)
        return out
    }

    private static func write(_ node: Manifest, indent: String, into out: inout String) {
        switch node {
        case .map(let pairs):
            for (key, value) in pairs {
                out += indent + scalar(key) + ":"
                writeValue(value, indent: indent, into: &out)
            }
        case .list(let items):
            for item in items {
                out += indent + "-"
                switch item {
                case .map(let pairs) where !pairs.isEmpty:
                    // The first key on the dash's line, the others under it.
                    // Written at the item's indent, then the dash takes the place of the
                    // first line's indent: what nests under the first key lines up under it.
                    var first = ""
                    write(.map([pairs[0]]), indent: indent + "  ", into: &first)
                    out += " " + first.dropFirst(indent.count + 2)
                    write(.map(Array(pairs.dropFirst())), indent: indent + "  ", into: &out)
                case .list(let inner) where !inner.isEmpty:
                    out += "\n"
                    write(item, indent: indent + "  ", into: &out)
                default:
                    out += " " + inline(item) + "\n"
                }
            }
        default:
            out += indent + inline(node) + "\n"
        }
    }

    /// After `key:`: a scalar or an empty collection on the same line, else the block below.
    private static func writeValue(_ value: Manifest, indent: String, into out: inout String) {
        switch value {
        case .map(let pairs) where !pairs.isEmpty:
            out += "\n"
            write(value, indent: indent + "  ", into: &out)
        case .list(let items) where !items.isEmpty:
            out += "\n"
            write(value, indent: indent + "  ", into: &out)
        default:
            out += " " + inline(value) + "\n"
        }
    }

    private static func inline(_ node: Manifest) -> String {
        switch node {
        case .string(let text): scalar(text)
        case .int(let number): String(number)
        case .bool(let flag): flag ? "true" : "false"
        case .list: "[]"
        case .map: "{}"
        }
    }

    /// A string plain when every YAML reader takes it back as the same string, double-quoted
    /// otherwise. Kubernetes reads manifests as YAML 1.1, which also takes `y`/`n` for
    /// booleans and `0x1F`, `0777`, `1_000`, `+5`, `.5` for numbers: anything starting with a
    /// digit, or a sign or dot before a digit, is quoted too.
    static func scalar(_ text: String) -> String {
        let plain = YAMLRender.scalar(text)
        guard plain == text else { return plain }
        let scalars = Array(text.unicodeScalars)
        let isDigit: (Unicode.Scalar) -> Bool = { $0.value >= 48 && $0.value <= 57 }
        let numberLike =
            isDigit(scalars[0])
            || ("+-.".unicodeScalars.contains(scalars[0]) && scalars.count > 1
                && (isDigit(scalars[1]) || scalars[1] == "."))
        if numberLike || ["y", "Y", "n", "N", "<<", "="].contains(text) { return YAMLRender.doubleQuoted(text) }
        return text
    }

    /// Several documents as one multi-document YAML stream, each opened by `---`.
    public static func stream(_ documents: [Manifest], header: String = "") -> String {
        header + documents.map { "---\n" + $0.yaml }.joined()
    }
}
