// A resolved profile written back as YAML (for `inspect`, `profile show`, exporting a
// profile built from flags). Hand-written rather than libyaml's emitter: the shape is fixed
// and small, and this keeps the output in the order and style of the built-in profiles.
// Round trip: `Profile.parse(yaml: p.yamlText, file: f)` equals `p` except for `source`.

extension Profile {
    /// Every field, defaults included, in the order of `Profile.yamlKeys`.
    public var yamlText: String {
        var out = ""
        func line(_ key: String, _ value: String) { out += "\(key): \(value)\n" }
        func list(_ key: String, _ items: [String]) {
            guard !items.isEmpty else { return line(key, "[]") }
            out += "\(key):\n"
            for item in items { out += "  - \(YAMLRender.scalar(item))\n" }
        }

        line("name", YAMLRender.scalar(name))
        line("engine", engine.rawValue)
        line("model", YAMLRender.scalar(model))
        line("host", YAMLRender.scalar(host))
        line("port", port.description)
        line("gpus", "[" + gpus.map(String.init).joined(separator: ", ") + "]")
        list("args", args)
        if env.isEmpty {
            line("env", "{}")
        } else {
            out += "env:\n"
            for key in env.keys.sorted() {
                out += "  \(YAMLRender.scalar(key)): \(YAMLRender.scalar(env[key] ?? ""))\n"
            }
        }
        line("startup_timeout", YAMLRender.duration(startupTimeout))
        line("stop_timeout", YAMLRender.duration(stopTimeout))
        out += "probe:\n"
        out += "  interval: \(YAMLRender.duration(probe.interval))\n"
        out += "  timeout: \(YAMLRender.duration(probe.timeout))\n"
        out += "  failure_threshold: \(probe.failureThreshold)\n"
        out += "restart:\n"
        out += "  policy: \(restart.mode.rawValue)\n"
        out += "  initial_delay: \(YAMLRender.duration(restart.initialDelay))\n"
        out += "  factor: \(YAMLRender.number(restart.factor))\n"
        out += "  max_delay: \(YAMLRender.duration(restart.maxDelay))\n"
        out += "  max_restarts: \(restart.maxRestarts)\n"
        out += "  window: \(YAMLRender.duration(restart.window))\n"
        out += "  reset_after: \(YAMLRender.duration(restart.resetAfter))\n"
        line("autostart", autostart ? "true" : "false")
        line("register", register ? "true" : "false")
        if let command { list("command", command) }
        if let healthPath { line("health_path", YAMLRender.scalar(healthPath)) }
        if let healthStatus { line("health_status", "\(healthStatus)") }
        if let image { line("image", YAMLRender.scalar(image)) }
        if let imageProgram { line("image_program", YAMLRender.scalar(imageProgram)) }
        if let executable { line("executable", YAMLRender.scalar(executable)) }
        if adopt == true { line("adopt", "true") }
        if let pull { line("pull", pull.rawValue) }
        if let aliases, !aliases.isEmpty { list("aliases", aliases) }
        if let ttl { line("ttl", YAMLRender.duration(ttl)) }
        if let group { line("group", YAMLRender.scalar(group)) }
        return out
    }
}

/// Scalar formatting for block-context YAML.
public enum YAMLRender {
    /// The text plain when YAML reads it back as the same string, double-quoted otherwise.
    public static func scalar(_ text: String) -> String {
        isSafePlain(text) ? text : doubleQuoted(text)
    }

    /// `90s`, `30m`, `500ms` when that reads back exactly; otherwise bare seconds, which
    /// Swift prints with enough digits to read back the same Double.
    static func duration(_ span: TimeSpan) -> String {
        // TimeSpan.description converts to Int: only call it where that cannot overflow.
        if span.seconds.isFinite, span.seconds >= 0, span.seconds <= 1e12 {
            let text = span.description
            if TimeSpan(parsing: text) == span { return text }
        }
        return "\(span.seconds)"
    }

    static func number(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e15 { return "\(Int(value))" }
        return "\(value)"
    }

    /// Conservative: printable ASCII, no leading indicator, nothing YAML would read as
    /// null, a boolean or a number, no `: ` or ` #`, no surrounding spaces.
    static func isSafePlain(_ text: String) -> Bool {
        guard let first = text.first, let last = text.last else { return false }
        guard first != " ", last != " ", last != ":" else { return false }
        guard case .string = YAMLScalarValue.resolvePlain(text) else { return false }
        guard text.allSatisfy({ $0.isASCII && $0 >= " " && $0 != "\u{7F}" }) else { return false }
        if "!&*|>'\"%@`{}[],#".contains(first) { return false }
        if "-?:".contains(first) {
            // `-x`, `--flag` are plain; `- x`, `-` alone or `---` are not.
            let second = text.dropFirst().first
            if second == nil || second == " " || text.hasPrefix("---") { return false }
        }
        if text.hasPrefix("...") { return false }
        return !text.contains(": ") && !text.contains(" #") && !text.contains("\t")
    }

    public static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                    || scalar.value == 0xFEFF || scalar.value == 0x2028 || scalar.value == 0x2029
                {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
