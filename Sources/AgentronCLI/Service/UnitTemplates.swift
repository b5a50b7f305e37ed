/// The systemd units `agentron service install` writes. Their text is `units/*.service|socket`,
/// embedded at build time by the EmbedUnits plugin (Plugins/EmbedUnits), so what install
/// writes and what packagers ship are the same files. ExecStart is rewritten to the agentrond
/// being installed.
enum UnitTemplates {
    static func service(user: Bool, agentrond: String) -> String {
        let template = user ? EmbeddedUnits.userService : EmbeddedUnits.systemService
        return rewritingExecStart(template, to: "ExecStart=" + execStartValue(agentrond))
    }

    static func socket(user: Bool) -> String {
        user ? EmbeddedUnits.userSocket : EmbeddedUnits.systemSocket
    }

    /// `unit` with its ExecStart= line replaced by `line`, whatever path units/ names there;
    /// every other byte stays as it is.
    static func rewritingExecStart(_ unit: String, to line: String) -> String {
        unit.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("ExecStart=") ? Substring(line) : $0 }
            .joined(separator: "\n")
    }

    /// A path as systemd reads it in ExecStart=: `%` starts a specifier and `$` a variable,
    /// so both are doubled; a path with spaces or quotes is quoted, with `\` and `"` escaped.
    static func execStartValue(_ path: String) -> String {
        var escaped = ""
        var needsQuotes = false
        for character in path {
            switch character {
            case "%": escaped += "%%"
            case "$": escaped += "$$"
            case "\\":
                escaped += "\\\\"
                needsQuotes = true
            case "\"":
                escaped += "\\\""
                needsQuotes = true
            case "'":
                escaped += "'"
                needsQuotes = true
            default:
                if character.isWhitespace { needsQuotes = true }
                escaped.append(character)
            }
        }
        return needsQuotes ? "\"" + escaped + "\"" : escaped
    }
}
