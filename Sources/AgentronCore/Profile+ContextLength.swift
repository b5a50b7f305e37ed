// How many tokens a server's context holds, when the profile says so: apps that register
// a model need it (OpenClaw assumes 200k without it and overflows an 8k vLLM; the Agentron
// app keeps `contextLength`), and the engine refuses longer prompts anyway.

extension Profile {
    /// The context length the profile sets for its engine, or nil when it leaves it to the
    /// engine's default (which only the running engine knows).
    ///
    /// - vllm: `--max-model-len N` (also `=N`, `8k` = 8,000, `8K` = 8,192, as vLLM reads it)
    /// - tgi: `--max-total-tokens N`
    /// - ollama: `OLLAMA_CONTEXT_LENGTH` in `env`
    /// - command: llama-server's `-c N` / `--ctx-size N`, SGLang's `--context-length N`
    public var contextLength: Int? {
        switch engine {
        case .vllm: Self.flagValue(in: args, names: ["--max-model-len", "--max_model_len"]).flatMap(Self.humanReadableInt)
        case .tgi: Self.flagValue(in: args, names: ["--max-total-tokens"]).flatMap(Self.positiveInt)
        case .ollama: env["OLLAMA_CONTEXT_LENGTH"].flatMap(Self.positiveInt)
        case .command:
            Self.flagValue(in: command ?? [], names: ["-c", "--ctx-size", "--context-length"]).flatMap(Self.positiveInt)
        }
    }

    /// The value after the last of `names` in `argv`: `--flag V` or `--flag=V`.
    static func flagValue(in argv: [String], names: [String]) -> String? {
        var found: String?
        for (index, argument) in argv.enumerated() {
            if names.contains(argument), index + 1 < argv.count {
                found = argv[index + 1]
            } else if let equals = argument.firstIndex(of: "="), names.contains(String(argument[..<equals])) {
                found = String(argument[argument.index(after: equals)...])
            }
        }
        return found
    }

    static func positiveInt(_ text: String) -> Int? {
        guard let value = Int(text.trimmingSpaces), value > 0, value <= 1 << 30 else { return nil }
        return value
    }

    /// vLLM's human-readable integers: `8192`, `8k` (×1000), `8K` (×1024), `1m`, `1M`.
    static func humanReadableInt(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces
        guard let last = trimmed.last else { return nil }
        let scales: [Character: Int] = ["k": 1000, "K": 1024, "m": 1_000_000, "M": 1 << 20]
        guard let scale = scales[last] else { return positiveInt(trimmed) }
        guard let number = Double(trimmed.dropLast()), number.isFinite, number > 0 else { return nil }
        let value = number * Double(scale)
        guard value <= Double(1 << 30) else { return nil }
        return Int(value)
    }
}
