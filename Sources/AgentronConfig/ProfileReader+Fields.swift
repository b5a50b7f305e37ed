import AgentronCore

// The field readers a `ProfileReader` builds a profile from (Profile+YAML.swift): strict
// mappings, typed values and the "did you mean" hints, each failing with the node's position.
extension ProfileReader {
    // MARK: Mappings and keys

    /// A mapping's entries by key, after refusing unknown and duplicate keys.
    struct Fields {
        var byKey: [String: YAMLNode.Pair] = [:]
        /// The value under `key`.
        subscript(key: String) -> YAMLNode? { byKey[key]?.value }
        /// The key node itself, for errors about the key rather than its value.
        func keyNode(_ key: String) -> YAMLNode? { byKey[key]?.key }
    }

    func mapping(_ node: YAMLNode, path: String, allowed: [String]) throws(ProfileError) -> Fields {
        guard case .mapping(let pairs) = node.content else {
            throw fail(
                node, path,
                "expected a mapping of keys (\(allowed.joined(separator: ", "))), found \(node.kindDescription); write each key on its own indented line under \(path):"
            )
        }
        var fields = Fields()
        var firstLine: [String: Int] = [:]
        for pair in pairs {
            let key = try keyText(pair.key, path: path)
            let field = Self.join(path, key)
            guard allowed.contains(key) else {
                throw fail(pair.key, field, unknownKeyMessage(key, path: path, allowed: allowed))
            }
            if let line = firstLine[key] {
                throw fail(pair.key, field, "duplicate key (first set on line \(line)); keep only one of them")
            }
            firstLine[key] = pair.key.line
            fields.byKey[key] = pair
        }
        return fields
    }

    func keyText(_ key: YAMLNode, path: String) throws(ProfileError) -> String {
        guard case .scalar(let text, _) = key.content, key.scalarValue != .null else {
            throw fail(
                key, path, "expected a key name, found \(key.kindDescription); write keys as plain words like port:")
        }
        return text
    }

    func unknownKeyMessage(_ key: String, path: String, allowed: [String]) -> String {
        if let best = Spelling.closest(to: key, in: allowed).first {
            return "unknown key; did you mean \(YAMLNode.quoteForMessage(best))?"
        }
        // A nested key written at the top level: say where it belongs.
        if path.isEmpty {
            for (section, keys) in [("probe", Profile.yamlProbeKeys), ("restart", Profile.yamlRestartKeys)] {
                if let best = keys.contains(key) ? key : Spelling.closest(to: key, in: keys).first {
                    return
                        "unknown key; did you mean \(YAMLNode.quoteForMessage(section + "." + best))? Write it indented under \(section):"
                }
            }
        }
        return "unknown key; valid keys\(path.isEmpty ? "" : " under \(path):") are \(allowed.joined(separator: ", "))"
    }

    // MARK: Values

    func text(_ node: YAMLNode, _ field: String, hint: String) throws(ProfileError) -> String {
        guard case .scalar(let text, _) = node.content, node.scalarValue != .null else {
            throw fail(node, field, "expected text, found \(node.kindDescription); \(hint)")
        }
        return text
    }

    func textList(_ node: YAMLNode, _ field: String, hint: String) throws(ProfileError) -> [String] {
        guard case .sequence(let items) = node.content else {
            throw fail(node, field, "expected a list, found \(node.kindDescription); \(hint)")
        }
        var out: [String] = []
        for (index, item) in items.enumerated() {
            guard case .scalar(let text, _) = item.content, item.scalarValue != .null else {
                throw fail(
                    item, "\(field)[\(index)]",
                    "expected text, found \(item.kindDescription); quote the item, e.g. \"--flag=value\"")
            }
            out.append(text)
        }
        return out
    }

    func integer(_ node: YAMLNode, _ field: String) throws(ProfileError) -> Int {
        let key = Self.leaf(field)
        switch node.scalarValue {
        case .int(let value):
            return value
        case .string(let string) where node.isQuoted && YAMLNode.isDecimalInteger(string.trimmingSpaces):
            throw fail(
                node, field,
                "expected a number, found the string \(YAMLNode.quoteForMessage(string)); write it without quotes: \(key): \(string.trimmingSpaces)"
            )
        default:
            throw fail(
                node, field,
                "expected a whole number, found \(node.kindDescription); write it like \(key): \(Self.integerExample(key))"
            )
        }
    }

    func number(_ node: YAMLNode, _ field: String) throws(ProfileError) -> Double {
        let key = Self.leaf(field)
        switch node.scalarValue {
        case .int(let value): return Double(value)
        case .float(let value) where value.isFinite: return value
        default:
            throw fail(node, field, "expected a number, found \(node.kindDescription); write it like \(key): 2")
        }
    }

    func boolean(_ node: YAMLNode, _ field: String) throws(ProfileError) -> Bool {
        guard case .bool(let value) = node.scalarValue else {
            let key = Self.leaf(field)
            let quoted = node.isQuoted ? " (without quotes)" : ""
            throw fail(
                node, field,
                "expected true or false, found \(node.kindDescription); write \(key): true or \(key): false\(quoted)")
        }
        return value
    }

    func duration(_ node: YAMLNode, _ field: String, allowZero: Bool = false) throws(ProfileError) -> TimeSpan {
        let key = Self.leaf(field)
        let hint = "write it like 90s, 30m or 500ms"
        guard case .scalar(let text, _) = node.content else {
            throw fail(node, field, "expected a duration, found \(node.kindDescription); \(hint)")
        }
        switch node.scalarValue {
        case .null, .bool, .none:
            throw fail(node, field, "expected a duration, found \(node.kindDescription); \(hint)")
        default:
            break
        }
        guard let span = TimeSpan(parsing: text), span.seconds.isFinite else {
            throw fail(node, field, "invalid duration \(YAMLNode.quoteForMessage(text)); \(hint)")
        }
        guard span <= Profile.maxYAMLDuration else {
            throw fail(node, field, "duration \(YAMLNode.quoteForMessage(text)) is longer than a year; \(hint)")
        }
        guard allowZero || span.seconds > 0 else {
            throw fail(node, field, "must be longer than 0; write it like \(key): 10s")
        }
        return span
    }

    /// A word from a fixed set (engine, restart policy), with a suggestion when close.
    func choice<T: RawRepresentable & CaseIterable>(
        _ node: YAMLNode, _ field: String, _ type: T.Type, what: String
    ) throws(ProfileError) -> T where T.RawValue == String {
        let valid = T.allCases.map(\.rawValue)
        guard case .scalar(let text, _) = node.content, case .string = node.scalarValue else {
            throw fail(
                node, field,
                "expected one of \(Self.list(valid)), found \(node.kindDescription); write it like \(Self.leaf(field)): \(valid[0])"
            )
        }
        if let value = T(rawValue: text) { return value }
        var message = "unknown \(what) \(YAMLNode.quoteForMessage(text)); "
        if let best = Spelling.closest(to: text, in: valid).first {
            message += "did you mean \(YAMLNode.quoteForMessage(best))? "
        }
        message += "Use one of \(Self.list(valid))"
        throw fail(node, field, message)
    }

    func port(_ node: YAMLNode) throws(ProfileError) -> PortSpec {
        let range = PortSpec.validRange
        let rangeText = "use a number from \(range.lowerBound) to \(range.upperBound), or auto"
        switch node.scalarValue {
        case .int(let value):
            guard range.contains(value) else {
                throw fail(node, "port", "port \(value) is out of range; \(rangeText)")
            }
            return .fixed(value)
        case .string("auto"):
            return .auto
        case .string(let string) where node.isQuoted && YAMLNode.isDecimalInteger(string.trimmingSpaces):
            // Ports are numbers: see the typing rules at the top of this file.
            throw fail(
                node, "port",
                "expected a number or auto, found the string \(YAMLNode.quoteForMessage(string)); write it without quotes: port: \(string.trimmingSpaces)"
            )
        case .string(let string):
            throw fail(node, "port", "invalid port \(YAMLNode.quoteForMessage(string)); \(rangeText)")
        default:
            throw fail(node, "port", "expected a number or auto, found \(node.kindDescription); \(rangeText)")
        }
    }

    /// A list of GPU indices, a comma-separated string "0,1" (as in CUDA_VISIBLE_DEVICES),
    /// or a single index.
    func gpus(_ node: YAMLNode) throws(ProfileError) -> [Int] {
        let hint = "write it like gpus: [0, 1] or gpus: \"0,1\""
        var indices: [(Int, YAMLNode, String)] = []
        switch node.content {
        case .sequence(let items):
            for (index, item) in items.enumerated() {
                indices.append((try integer(item, "gpus[\(index)]"), item, "gpus[\(index)]"))
            }
        case .scalar(let text, _):
            switch node.scalarValue {
            case .int(let value):
                indices.append((value, node, "gpus"))
            case .string:
                for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                    let trimmed = String(part).trimmingSpaces
                    guard YAMLNode.isDecimalInteger(trimmed), let value = Int(trimmed) else {
                        if text.trimmingSpaces.isEmpty { return [] }
                        throw fail(node, "gpus", "invalid GPU list \(YAMLNode.quoteForMessage(text)); \(hint)")
                    }
                    indices.append((value, node, "gpus"))
                }
            default:
                throw fail(node, "gpus", "expected a list of GPU indices, found \(node.kindDescription); \(hint)")
            }
        case .mapping:
            throw fail(node, "gpus", "expected a list of GPU indices, found \(node.kindDescription); \(hint)")
        }
        var seen: Set<Int> = []
        for (value, item, field) in indices {
            guard value >= 0 else {
                throw fail(item, field, "GPU index \(value) is negative; use the indices nvidia-smi shows (0, 1, ...)")
            }
            guard seen.insert(value).inserted else {
                throw fail(item, field, "GPU \(value) is listed twice; list each GPU once")
            }
        }
        return indices.map(\.0)
    }

    func environment(_ node: YAMLNode) throws(ProfileError) -> [String: String] {
        guard case .mapping(let pairs) = node.content else {
            throw fail(
                node, "env",
                "expected a mapping of variables, found \(node.kindDescription); write each on its own line under env:, like   HF_HOME: /data/hf"
            )
        }
        var env: [String: String] = [:]
        var firstLine: [String: Int] = [:]
        for pair in pairs {
            let key = try keyText(pair.key, path: "env")
            let field = "env." + key
            guard Self.isEnvironmentName(key) else {
                throw fail(
                    pair.key, field, "invalid variable name; use letters, digits and _, not starting with a digit")
            }
            if let line = firstLine[key] {
                throw fail(pair.key, field, "duplicate key (first set on line \(line)); keep only one of them")
            }
            firstLine[key] = pair.key.line
            env[key] = try text(pair.value, field, hint: "write \(key): \"\" for an empty value, or quote the value")
        }
        return env
    }

    // MARK: Helpers

    static let nameRule =
        "use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters"

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : path + "." + key
    }

    static func leaf(_ field: String) -> String {
        var key = Substring(field)
        if let dot = key.lastIndex(of: ".") { key = key[key.index(after: dot)...] }
        if let bracket = key.firstIndex(of: "[") { key = key[..<bracket] }
        return String(key)
    }

    static func list(_ words: [String]) -> String {
        words.joined(separator: ", ")
    }

    static func integerExample(_ key: String) -> String {
        switch key {
        case "port": "8080"
        case "health_status": "200"
        case "failure_threshold": "3"
        case "max_restarts": "5"
        default: "0"
        }
    }

    static func isEnvironmentName(_ name: String) -> Bool { Profile.isEnvironmentName(name) }
}

/// "Did you mean" suggestions, by edit distance over lower-cased names with `-` read as `_`
/// (so `startup-timeout` and `startupTimeout` both find `startup_timeout`).
enum Spelling {
    /// Candidates close to `word`, closest first.
    static func closest(to word: String, in candidates: [String], limit: Int = 3) -> [String] {
        let target = normalized(word)
        let threshold = max(1, min(3, target.count / 3))
        let scored = candidates.compactMap { candidate -> (String, Int)? in
            let other = normalized(candidate)
            let distance =
                other.filter { $0 != "_" } == target.filter { $0 != "_" } ? 0 : distanceBetween(target, other)
            return distance <= threshold ? (candidate, distance) : nil
        }
        return scored.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }.prefix(limit).map(\.0)
    }

    static func normalized(_ word: String) -> [Character] {
        word.lowercased().map { $0 == "-" ? "_" : $0 }
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and
    /// transpositions of neighbours (`prot` → `port` is one edit).
    static func distanceBetween(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    best = min(best, previous2[j - 2] + 1)
                }
                current[j] = best
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
