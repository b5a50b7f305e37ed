// Secrets stay secret (docs/configuration.md, "Secrets"; issue #10): a token passed in a profile's env or as an
// engine argument (`--api-key`, `--hf-token`, a `command` array) never shows in the
// "starting" line of the engine log, `inspect`, a failure's log tail or `logs`.

extension Profile {
    static let redactedMarker = "<redacted>"
    /// Shorter values are not hunted for in log text: "8192" or "auto" would blank every
    /// line that mentions them. Tokens and keys are much longer.
    static let minimumSecretLength = 8

    /// A flag whose value is a secret: one of its words is token, key, secret, password
    /// (`--api-key`, `--hf-token`, `--token`, `--password`, `--secret-key`). Words, not
    /// substrings: `--max-num-batched-tokens`, `--tokenizer` and `--ssl-keyfile` are not.
    public static func isSecretFlag(_ flag: String) -> Bool {
        guard flag.hasPrefix("-") else { return false }
        let words = flag.drop { $0 == "-" }.uppercased().split(whereSeparator: { $0 == "-" || $0 == "_" }).map(
            String.init)
        return !words.isEmpty && isSecretName(words)
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
        // Longest first, so a secret containing another is replaced whole. Numbers and
        // words like "true" are settings, whatever the flag is called.
        let hunted = values.filter { value in
            value.count >= Profile.minimumSecretLength && !value.allSatisfy { $0.isNumber || $0 == "." }
        }
        return Set(hunted).sorted { $0.count > $1.count }
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
