// Secrets stay secret (DESIGN §3, issue #10): a token passed in a profile's env or as an
// engine argument (`--api-key`, `--hf-token`, a `command` array) never shows in the
// "starting" line of the engine log, `inspect`, a failure's log tail or `logs`.

extension Profile {
    static let redactedMarker = "<redacted>"
    /// Shorter values are not hunted for in text: "1" or "yes" would blank half a log.
    static let minimumSecretLength = 4

    /// A flag whose value is a secret: `--api-key`, `--hf-token`, `--token`, `--password`,
    /// `--secret`, and any other whose name says token, key, secret or password.
    public static func isSecretFlag(_ flag: String) -> Bool {
        guard flag.hasPrefix("-") else { return false }
        let name = flag.drop { $0 == "-" }.lowercased()
        guard !name.isEmpty else { return false }
        // Paths to key files are not secrets themselves, and are useful to see.
        if name.hasSuffix("file") || name.hasSuffix("path") || name.hasSuffix("dir") { return false }
        return ["token", "key", "secret", "password", "passwd"].contains { name.contains($0) }
    }

    /// `argv` with the value of every secret flag replaced: `--api-key X` and `--api-key=X`.
    public static func redactArguments(_ argv: [String]) -> [String] {
        var redactNext = false
        return argv.map { argument in
            if redactNext {
                redactNext = false
                return redactedMarker
            }
            if let equals = argument.firstIndex(of: "="), isSecretFlag(String(argument[..<equals])) {
                return argument[...equals] + redactedMarker
            }
            redactNext = isSecretFlag(argument)
            return argument
        }
    }

    /// The secret values this profile carries: secret env values and the values of secret
    /// flags in `args` and `command`.
    public var secretValues: [String] {
        var values: [String] = []
        for (key, value) in env where Profile.isSecretKey(key) { values.append(value) }
        for argv in [args, command ?? []] {
            for (index, argument) in argv.enumerated() {
                if let equals = argument.firstIndex(of: "="), Profile.isSecretFlag(String(argument[..<equals])) {
                    values.append(String(argument[argument.index(after: equals)...]))
                } else if Profile.isSecretFlag(argument), index + 1 < argv.count {
                    values.append(argv[index + 1])
                }
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        return Set(values.filter { $0.count >= Profile.minimumSecretLength }).sorted { $0.count > $1.count }
    }

    /// `text` with every secret value of this profile replaced (an engine that echoes its
    /// arguments, as vLLM's "non-default args" line does).
    public func redact(_ text: String) -> String {
        Profile.redact(text, secrets: secretValues)
    }

    public static func redact(_ text: String, secrets: [String]) -> String {
        guard !secrets.isEmpty else { return text }
        var result = text
        for secret in secrets where result.contains(secret) {
            result = result.replacing(secret, with: redactedMarker)
        }
        return result
    }
}
