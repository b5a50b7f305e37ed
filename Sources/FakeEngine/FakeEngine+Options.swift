// The `vllm` command line, parsed the way vLLM's FlexibleArgumentParser (argparse) does
// for what agentron passes, and accepting every other flag without knowing it.

/// What `vllm ...` asked for.
enum VLLMCommand: Equatable {
    case version
    case help(String)
    case serve(VLLMServeOptions)
}

/// `vllm serve` options the fixture acts on. Every other flag is accepted and only logged.
struct VLLMServeOptions: Equatable, Sendable {
    var model: String
    /// nil: all interfaces, like vLLM's `--host` default (None → "0.0.0.0" in its logs).
    var host: String?
    var port: Int = 8000
    /// `--served-model-name` (nargs='+'); the model id when absent.
    var servedModelNames: [String]
    /// `--api-key` (one or more), else `VLLM_API_KEY` from the environment.
    var apiKeys: [String]
    var maxModelLen: Int?
    /// `(key, python repr)` pairs for the "non-default args: {...}" startup line.
    var nonDefaultArgs: [LoggedArgument]

    struct LoggedArgument: Equatable, Sendable {
        var key: String
        var pythonValue: String
    }

    /// The name the first model card and default replies use.
    var primaryServedName: String { servedModelNames.first ?? model }
    /// The max_model_len reported by /v1/models (vLLM reads it from the model config).
    var effectiveMaxModelLen: Int { maxModelLen ?? 4096 }
}

/// An argparse-style usage error: printed as `usage: ...` + `prog: error: message`, exit 2.
struct VLLMUsageError: Error, Equatable, CustomStringConvertible {
    var prog: String
    var usage: String
    var message: String
    var description: String { "\(usage)\n\(prog): error: \(message)" }
}

enum VLLMArguments {
    static let topUsage = "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ..."
    static let serveUsage = "usage: vllm serve [model_tag] [options]"
    static let subcommands = ["chat", "complete", "serve", "bench", "collect-env", "run-batch"]

    static let topHelp = """
        \(topUsage)

        vLLM CLI

        positional arguments:
          {chat,complete,serve,bench,collect-env,run-batch}
            serve               Launch a local OpenAI-compatible API server to serve LLM
                                completions via HTTP.

        options:
          -h, --help            show this help message and exit
          -v, --version         show program's version number and exit
        """

    static let serveHelp = """
        \(serveUsage)

        Launch a local OpenAI-compatible API server to serve LLM completions via HTTP.

        positional arguments:
          model_tag             The model tag to serve (optional if specified in config)

        options:
          --host HOST           Host name.
          --port PORT           Port number.
          --api-key API_KEY [API_KEY ...]
                                If provided, the server will require one of these keys to be
                                presented in the header.
          --model MODEL         Name or path of the Hugging Face model to use.
          --served-model-name SERVED_MODEL_NAME [SERVED_MODEL_NAME ...]
                                The model name(s) used in the API.
          --max-model-len MAX_MODEL_LEN
                                Model context length.
          (fake-engine: every other vLLM flag is accepted and ignored)
        """

    /// vLLM flags that take no value (store_true and BooleanOptionalAction). Any other
    /// unknown flag takes the next token as its value unless that token is itself an option,
    /// so `--enforce-eager <model>` keeps the model positional.
    static let valuelessFlags: Set<String> = [
        "--async-scheduling", "--disable-cascade-attn", "--disable-custom-all-reduce",
        "--disable-fastapi-docs", "--disable-frontend-multiprocessing", "--disable-log-requests",
        "--disable-log-stats", "--disable-sliding-window", "--disable-uvicorn-access-log",
        "--enable-auto-tool-choice", "--enable-chunked-prefill", "--enable-eplb",
        "--enable-expert-parallel", "--enable-force-include-usage", "--enable-log-outputs",
        "--enable-log-requests", "--enable-lora", "--enable-prefix-caching",
        "--enable-prompt-embeds", "--enable-prompt-tokens-details", "--enable-request-id-headers",
        "--enable-server-load-tracking", "--enable-sleep-mode", "--enable-ssl-refresh",
        "--enable-tokenizer-info-endpoint", "--enforce-eager", "--headless",
        "--return-tokens-as-token-ids", "--skip-tokenizer-init", "--trust-remote-code",
        "--trust-request-chat-template", "--use-tqdm-on-load", "--enable-lora-bias",
        "--fully-sharded-loras", "--enable-dbo", "--disable-chunked-mm-input",
    ]

    /// Frontend (API server) keys come before engine keys in vLLM's "non-default args" line.
    static let frontendKeys: Set<String> = ["host", "port", "api_key", "uvicorn_log_level", "uds"]

    /// Parses everything after argv[0].
    static func parse(_ arguments: [String], environment: (String) -> String?) throws(VLLMUsageError) -> VLLMCommand {
        guard let first = arguments.first else { return .help(topHelp) }
        switch first {
        case "-v", "--version": return .version
        case "-h", "--help": return .help(topHelp)
        case "serve": return try parseServe(Array(arguments.dropFirst()), environment: environment)
        case _ where subcommands.contains(first):
            throw VLLMUsageError(
                prog: "vllm", usage: topUsage,
                message: "fake-engine emulates only `vllm serve`, not `vllm \(first)`")
        default:
            let choices = subcommands.map { "'\($0)'" }.joined(separator: ", ")
            throw VLLMUsageError(
                prog: "vllm", usage: topUsage,
                message: "argument subparser: invalid choice: '\(first)' (choose from \(choices))")
        }
    }

    static func parseServe(_ arguments: [String], environment: (String) -> String?) throws(VLLMUsageError) -> VLLMCommand {
        func usageError(_ message: String) -> VLLMUsageError {
            VLLMUsageError(prog: "vllm serve", usage: serveUsage, message: message)
        }
        var positionals: [String] = []
        var modelFlag: String?
        var host: String?
        var port = 8000
        var servedNames: [String]?
        var apiKeys: [String]?
        var maxModelLen: Int?
        var logged: [VLLMServeOptions.LoggedArgument] = []

        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            index += 1
            if token == "--" {
                positionals += arguments[index...]
                break
            }
            guard isOption(token) else {
                positionals.append(token)
                continue
            }
            let (name, inlineValue) = splitOption(token)
            let key = pythonKey(name)

            /// One value: inline (`--x=y`) or the next token unless it is an option.
            func singleValue() throws(VLLMUsageError) -> String {
                if let inlineValue { return inlineValue }
                guard index < arguments.count, !isOption(arguments[index]) else {
                    throw usageError("argument \(name): expected one argument")
                }
                index += 1
                return arguments[index - 1]
            }
            /// nargs='+': inline value, or every following token up to the next option.
            func oneOrMoreValues() throws(VLLMUsageError) -> [String] {
                if let inlineValue { return [inlineValue] }
                var values: [String] = []
                while index < arguments.count, !isOption(arguments[index]) {
                    values.append(arguments[index])
                    index += 1
                }
                guard !values.isEmpty else { throw usageError("argument \(name): expected at least one argument") }
                return values
            }

            switch name {
            case "-h", "--help":
                return .help(serveHelp)
            case "--model":
                modelFlag = try singleValue()
            case "--host":
                host = try singleValue()
                logged.append(.init(key: key, pythonValue: pythonString(host ?? "")))
            case "--port":
                let value = try singleValue()
                guard let parsed = Int(value), (0...65535).contains(parsed) else {
                    throw usageError("argument --port: invalid int value: '\(value)'")
                }
                port = parsed
                logged.append(.init(key: key, pythonValue: String(parsed)))
            case "--served-model-name":
                let names = try oneOrMoreValues()
                servedNames = names
                logged.append(.init(key: key, pythonValue: pythonList(names)))
            case "--api-key":
                let keys = try oneOrMoreValues()
                apiKeys = keys
                logged.append(.init(key: key, pythonValue: pythonList(keys)))
            case "--max-model-len":
                let value = try singleValue()
                guard let parsed = humanReadableInt(value) else {
                    throw usageError("argument --max-model-len: invalid human_readable_int value: '\(value)'")
                }
                maxModelLen = parsed
                logged.append(.init(key: key, pythonValue: String(parsed)))
            default:
                if let inlineValue {
                    logged.append(.init(key: key, pythonValue: pythonScalar(inlineValue)))
                } else if valuelessFlags.contains(name) || name.hasPrefix("--no-") {
                    let negated = name.hasPrefix("--no-")
                    logged.append(.init(
                        key: negated ? pythonKey("--" + name.dropFirst(5)) : key,
                        pythonValue: negated ? "False" : "True"))
                } else if index < arguments.count, !isOption(arguments[index]) {
                    logged.append(.init(key: key, pythonValue: pythonScalar(arguments[index])))
                    index += 1
                } else {
                    logged.append(.init(key: key, pythonValue: "True"))
                }
            }
        }

        guard positionals.count <= 1 else {
            throw usageError("unrecognized arguments: \(positionals.dropFirst().joined(separator: " "))")
        }
        // vLLM's positional model_tag takes precedence over --model.
        guard let model = positionals.first ?? modelFlag else {
            throw usageError("the following arguments are required: model_tag (or --model)")
        }
        if apiKeys == nil, let fromEnvironment = environment("VLLM_API_KEY"), !fromEnvironment.isEmpty {
            apiKeys = [fromEnvironment]
        }

        var ordered: [VLLMServeOptions.LoggedArgument] = []
        if let tag = positionals.first { ordered.append(.init(key: "model_tag", pythonValue: pythonString(tag))) }
        ordered += logged.filter { frontendKeys.contains($0.key) }
        ordered.append(.init(key: "model", pythonValue: pythonString(model)))
        ordered += logged.filter { !frontendKeys.contains($0.key) }

        return .serve(
            VLLMServeOptions(
                model: model,
                host: host,
                port: port,
                servedModelNames: servedNames ?? [model],
                apiKeys: apiKeys ?? [],
                maxModelLen: maxModelLen,
                nonDefaultArgs: ordered))
    }

    /// argparse treats `-x`/`--x` as options but `-1` (a negative number) and `-` as values.
    static func isOption(_ token: String) -> Bool {
        guard token.hasPrefix("-"), token.count > 1 else { return false }
        let second = token.dropFirst().first ?? "-"
        return !(second.isNumber || second == ".")
    }

    /// `--max_model_len=4k` → ("--max-model-len", "4k"). FlexibleArgumentParser accepts
    /// underscores in long option names.
    static func splitOption(_ token: String) -> (name: String, value: String?) {
        var name = token
        var value: String?
        if let equals = token.firstIndex(of: "=") {
            name = String(token[..<equals])
            value = String(token[token.index(after: equals)...])
        }
        if name.hasPrefix("--") {
            name = "--" + String(name.dropFirst(2).map { $0 == "_" ? "-" : $0 })
        }
        return (name, value)
    }

    static func pythonKey(_ name: String) -> String {
        String(name.drop { $0 == "-" }.map { $0 == "-" ? "_" : $0 })
    }

    /// vLLM's human_readable_int: "4096", "4k" (×1000), "4K" (×1024), "1m"/"1M".
    static func humanReadableInt(_ text: String) -> Int? {
        if let plain = Int(text), plain >= 0 { return plain }
        guard let suffix = text.last, let number = Double(text.dropLast()), number >= 0 else { return nil }
        let multiplier: Double
        switch suffix {
        case "k": multiplier = 1_000
        case "K": multiplier = 1_024
        case "m": multiplier = 1_000_000
        case "M": multiplier = 1_048_576
        case "g": multiplier = 1_000_000_000
        case "G": multiplier = 1_073_741_824
        default: return nil
        }
        return Int(number * multiplier)
    }

    static func pythonString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    static func pythonList(_ items: [String]) -> String {
        "[" + items.map(pythonString).joined(separator: ", ") + "]"
    }

    /// How argparse's typed value would print: numbers bare, everything else quoted.
    static func pythonScalar(_ text: String) -> String {
        if Int(text) != nil || (Double(text) != nil && !text.contains("n") && !text.contains("N")) { return text }
        if text == "True" || text == "False" || text == "true" || text == "false" {
            return text.lowercased() == "true" ? "True" : "False"
        }
        return pythonString(text)
    }
}

extension String {
    /// Foundation-free stand-in for `replacingOccurrences(of:with:)`.
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var remainder = self[...]
        while let range = remainder.firstRange(of: target) {
            result += remainder[..<range.lowerBound]
            result += replacement
            remainder = remainder[range.upperBound...]
        }
        result += remainder
        return result
    }
}
