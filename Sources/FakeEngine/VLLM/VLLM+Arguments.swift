#if canImport(Glibc)
    import Glibc
#endif

// The `vllm` command line, parsed the way vLLM's FlexibleArgumentParser (argparse) does
// for what agentron passes, accepting every other flag without knowing it.

/// What `vllm serve` was asked for.
struct VLLMOptions: Sendable {
    var model = ""
    /// nil: every interface, like vLLM's `--host` default.
    var host: String?
    var port = 8000
    /// `--served-model-name` (one or more); the model id when absent.
    var servedNames: [String] = []
    /// `--api-key` (one or more), else VLLM_API_KEY.
    var apiKeys: [String] = []
    var maxModelLen = 4096
    var accessLog = true
    /// `'key': value` entries of the "non-default args: {...}" startup line.
    var logged: [String] = []
}

enum VLLMArguments {
    static let version = "0.11.0"
    static let topUsage = "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ..."
    static let serveUsage = "usage: vllm serve [model_tag] [options]"

    /// Parses everything after argv[0]; `--version`, help and usage errors end the process
    /// as argparse does (a usage error: usage and message on stderr, exit 2).
    static func parse(_ arguments: [String], environment: (String) -> String?) -> VLLMOptions {
        switch arguments.first {
        case "-v", "--version": Console.finish(version, code: 0)
        case nil, "-h", "--help": Console.finish(topUsage, code: 0)
        case "serve": break
        case let command?: usageError(topUsage, "vllm", "fake-engine emulates only `vllm serve`, not `vllm \(command)`")
        }
        var options = VLLMOptions()
        var positionals: [String] = []
        var modelFlag: String?
        var rest = arguments.dropFirst()
        while let token = rest.popFirst() {
            if token == "--" {
                positionals += rest
                break
            }
            guard isOption(token) else {
                positionals.append(token)
                continue
            }
            // `--max_model_len=4096` is `--max-model-len 4096`.
            let parts = token.split(separator: "=", maxSplits: 1).map(String.init)
            let name = parts[0].hasPrefix("--") ? parts[0].replacing("_", with: "-") : parts[0]
            var values = parts.count > 1 ? [parts[1]] : []
            // One value, or (nargs='+') every token up to the next option.
            func take(many: Bool = false) -> [String] {
                while values.isEmpty || many && parts.count == 1, let next = rest.first, !isOption(next) {
                    values.append(next)
                    rest.removeFirst()
                }
                if values.isEmpty {
                    usageError(
                        serveUsage, "vllm serve", "argument \(name): expected \(many ? "at least " : "")one argument")
                }
                return values
            }
            switch name {
            case "-h", "--help": Console.finish(serveUsage, code: 0)
            case "--model": modelFlag = take()[0]
            case "--host": options.host = take()[0]
            case "--port":
                guard let port = Int(take()[0]), (0...65535).contains(port) else {
                    usageError(serveUsage, "vllm serve", "argument --port: invalid int value: '\(values[0])'")
                }
                options.port = port
            case "--served-model-name": options.servedNames = take(many: true)
            case "--api-key": options.apiKeys = take(many: true)
            case "--max-model-len": options.maxModelLen = Int(take()[0]) ?? options.maxModelLen
            case "--disable-uvicorn-access-log": options.accessLog = false
            default:
                // An unknown flag takes the next token unless that is an option: a store_true
                // flag is best followed by another flag.
                if values.isEmpty, rest.first.map(isOption) == false { values = [rest.removeFirst()] }
            }
            let key = String(name.drop { $0 == "-" }).replacing("-", with: "_")
            let isList = ["--served-model-name", "--api-key"].contains(name)
            let value =
                values.isEmpty
                ? "True" : isList ? "[" + values.map(python).joined(separator: ", ") + "]" : python(values[0])
            options.logged.append("'\(key)': \(value)")
        }
        guard positionals.count <= 1 else {
            usageError(
                serveUsage, "vllm serve", "unrecognized arguments: \(positionals.dropFirst().joined(separator: " "))")
        }
        // vLLM's positional model_tag takes precedence over --model.
        guard let model = positionals.first ?? modelFlag else {
            usageError(serveUsage, "vllm serve", "the following arguments are required: model_tag (or --model)")
        }
        options.model = model
        options.logged.insert("'model': \(python(model))", at: 0)
        if options.servedNames.isEmpty { options.servedNames = [model] }
        if options.apiKeys.isEmpty, let key = environment("VLLM_API_KEY"), !key.isEmpty { options.apiKeys = [key] }
        return options
    }

    /// argparse treats `-x`/`--x` as options but `-1` (a negative number) and `-` as values.
    static func isOption(_ token: String) -> Bool {
        guard token.hasPrefix("-"), let second = token.dropFirst().first else { return false }
        return !(second.isNumber || second == ".")
    }

    /// How argparse's value prints in Python: numbers bare, everything else quoted.
    static func python(_ text: String) -> String {
        if Int(text) != nil || Double(text)?.isFinite == true { return text }
        return "'" + text.replacing("\\", with: "\\\\").replacing("'", with: "\\'") + "'"
    }

    static func usageError(_ usage: String, _ prog: String, _ message: String) -> Never {
        Console.finish("\(usage)\n\(prog): error: \(message)", code: 2)
    }
}
