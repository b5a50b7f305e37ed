#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

// `text-generation-launcher` as Hugging Face's TGI 3.x image runs it (the image's
// ENTRYPOINT): clap-style flags with env fallbacks, tracing-subscriber log lines on stdout,
// the weight download, N shards that load, then the router ("webserver"), which binds its
// port only once warm-up is done, so connections are refused while loading. On SIGTERM or
// SIGINT the launcher stops the webserver, then the shards, and exits 0. A failure the
// launcher reports ends with Rust's `Error: <LauncherError>` on stderr and exit 1.
// Shards and the router are not separate processes here: the launcher logs for them.

enum TGI {
    static let version = "3.3.6"
    static let sha = "9a1b3c5d7e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b"
    static let dockerLabel = "sha-9a1b3c5"
    static let router = "text-generation-router"
    /// The image sets PORT=80; the launcher's own default (3000) never shows in a container.
    static let defaultPort = 80
    static let defaultHostname = "0.0.0.0"
    /// Delay before a download failure, the time the hub lookup takes.
    static let downloadFailureDelay = 0.1
    /// The launcher repeats "Waiting for shard to be ready..." this often while loading.
    static let shardWaitInterval = 10.0
    /// What a model "answers" when the conversation has no user text.
    static let emptyPromptReply = "Hello! This is a fake TGI engine."

    static var systemFingerprint: String { "\(version)-\(dockerLabel)" }
}

// MARK: - Logging

/// tracing-subscriber's default text format, which TGI's launcher and router use:
/// `2025-11-25T10:00:00.123456Z  INFO download: text_generation_launcher: message rank=0`
/// (the level right-aligned in five columns, an optional span, the target, the message,
/// then fields). Everything goes to stdout, one write per event (a multi-line message
/// such as the Args dump stays one write).
struct TGILog: Sendable {
    enum Level: String {
        case info = " INFO"
        case warn = " WARN"
        case error = "ERROR"
    }

    static let launcher = "text_generation_launcher"
    static let server = "text_generation_router::server"

    func event(_ level: Level, span: String? = nil, target: String = TGILog.launcher, _ message: String, fields: String = "") {
        var line = "\(Self.stamp()) \(level.rawValue) "
        if let span { line += span + ": " }
        line += target + ": " + message
        if !fields.isEmpty { line += " " + fields }
        Console.out(line)
    }

    func info(_ message: String, span: String? = nil, target: String = TGILog.launcher, fields: String = "") {
        event(.info, span: span, target: target, message, fields: fields)
    }
    func warn(_ message: String, span: String? = nil, target: String = TGILog.launcher, fields: String = "") {
        event(.warn, span: span, target: target, message, fields: fields)
    }
    func error(_ message: String, span: String? = nil, target: String = TGILog.launcher, fields: String = "") {
        event(.error, span: span, target: target, message, fields: fields)
    }
    /// A shard-manager event: `INFO shard-manager: text_generation_launcher: ... rank=N`.
    func shard(_ message: String, rank: Int, level: Level = .info) {
        event(level, span: "shard-manager", message, fields: "rank=\(rank)")
    }

    /// RFC 3339 UTC with microseconds: "2025-11-25T10:00:00.123456Z".
    static func stamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let date = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let micros = String(spec.tv_nsec / 1000)
        return date + "." + String(repeating: "0", count: max(0, 6 - micros.count)) + micros + "Z"
    }
}

// MARK: - Command line

/// What `text-generation-launcher ...` asked for.
enum TGICommand: Equatable {
    case version
    case help
    case launch(TGIOptions)
}

/// The launcher options the fixture acts on; every other flag is accepted and only logged.
struct TGIOptions: Equatable, Sendable {
    var modelID: String
    /// As given (flag, HOSTNAME, default); the router binds it only if it is an IP literal.
    var hostname: String = TGI.defaultHostname
    var port: Int = TGI.defaultPort
    var apiKey: String?
    var numShard: Int?
    /// `--huggingface-hub-cache` / HUGGINGFACE_HUB_CACHE: the launcher hands it to the
    /// download process as HUGGINGFACE_HUB_CACHE.
    var huggingfaceHubCache: String?
    var maxInputTokens: Int?
    var maxTotalTokens: Int?
    /// The `Args { ... }` fields, Rust-Debug rendered, in declaration order.
    var loggedArguments: [TGIArguments.Logged] = []

    var shardCount: Int { max(numShard ?? 1, 1) }
    var effectiveMaxTotalTokens: Int { maxTotalTokens ?? 4096 }
    var effectiveMaxInputTokens: Int { maxInputTokens ?? effectiveMaxTotalTokens - 1 }

    /// The address the router binds: the hostname when it parses as an IP address, else
    /// nil (the router warns and uses 0.0.0.0, what happens with Docker's HOSTNAME).
    var bindAddress: String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, hostname, &v4) == 1 || inet_pton(AF_INET6, hostname, &v6) == 1 { return hostname }
        return nil
    }
}

/// A clap usage error: printed on stderr, exit 2.
struct TGIUsageError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { "error: \(message)\n\nFor more information, try '--help'." }
}

enum TGIArguments {
    struct Logged: Equatable, Sendable {
        var key: String
        var debugValue: String
    }

    /// How a field prints in Rust's `{:#?}` and parses from the command line.
    enum Kind {
        case string, optionalString, integer, optionalInteger, float, optionalFloat
        case bool, optionalBool, optionalEnum, list, optionalRaw
    }

    struct Field {
        var key: String
        var kind: Kind
        var defaultValue: String?
        /// clap's `env` fallback the fixture honours (only a few: a shell's environment
        /// is full of names like ENV and PORT that must not leak into a native run).
        var environment: String?
    }

    /// The launcher's Args, in declaration order (TGI 3.x). `defaultValue` nil: None / [].
    static let fields: [Field] = [
        Field(key: "model_id", kind: .string, environment: "MODEL_ID"),
        Field(key: "revision", kind: .optionalString),
        Field(key: "validation_workers", kind: .integer, defaultValue: "2"),
        Field(key: "sharded", kind: .optionalBool),
        Field(key: "num_shard", kind: .optionalInteger, environment: "NUM_SHARD"),
        Field(key: "quantize", kind: .optionalEnum),
        Field(key: "speculate", kind: .optionalInteger),
        Field(key: "dtype", kind: .optionalEnum),
        Field(key: "kv_cache_dtype", kind: .optionalEnum),
        Field(key: "trust_remote_code", kind: .bool, defaultValue: "false"),
        Field(key: "max_concurrent_requests", kind: .integer, defaultValue: "128"),
        Field(key: "max_best_of", kind: .integer, defaultValue: "2"),
        Field(key: "max_stop_sequences", kind: .integer, defaultValue: "4"),
        Field(key: "max_top_n_tokens", kind: .integer, defaultValue: "5"),
        Field(key: "max_input_tokens", kind: .optionalInteger, environment: "MAX_INPUT_TOKENS"),
        Field(key: "max_input_length", kind: .optionalInteger),
        Field(key: "max_total_tokens", kind: .optionalInteger, environment: "MAX_TOTAL_TOKENS"),
        Field(key: "waiting_served_ratio", kind: .float, defaultValue: "0.3"),
        Field(key: "max_batch_prefill_tokens", kind: .optionalInteger),
        Field(key: "max_batch_total_tokens", kind: .optionalInteger),
        Field(key: "max_waiting_tokens", kind: .integer, defaultValue: "20"),
        Field(key: "max_batch_size", kind: .optionalInteger),
        Field(key: "cuda_graphs", kind: .optionalRaw),
        Field(key: "hostname", kind: .string, defaultValue: TGI.defaultHostname, environment: "HOSTNAME"),
        Field(key: "port", kind: .integer, defaultValue: String(TGI.defaultPort), environment: "PORT"),
        Field(key: "prometheus_port", kind: .integer, defaultValue: "9000"),
        Field(key: "shard_uds_path", kind: .string, defaultValue: "/tmp/text-generation-server"),
        Field(key: "master_addr", kind: .string, defaultValue: "localhost"),
        Field(key: "master_port", kind: .integer, defaultValue: "29500"),
        Field(key: "huggingface_hub_cache", kind: .optionalString, environment: "HUGGINGFACE_HUB_CACHE"),
        Field(key: "weights_cache_override", kind: .optionalString),
        Field(key: "disable_custom_kernels", kind: .bool, defaultValue: "false"),
        Field(key: "cuda_memory_fraction", kind: .float, defaultValue: "1.0"),
        Field(key: "rope_scaling", kind: .optionalEnum),
        Field(key: "rope_factor", kind: .optionalFloat),
        Field(key: "json_output", kind: .bool, defaultValue: "false"),
        Field(key: "otlp_endpoint", kind: .optionalString),
        Field(key: "otlp_service_name", kind: .string, defaultValue: "text-generation-inference.router"),
        Field(key: "cors_allow_origin", kind: .list),
        Field(key: "api_key", kind: .optionalString, environment: "API_KEY"),
        Field(key: "watermark_gamma", kind: .optionalFloat),
        Field(key: "watermark_delta", kind: .optionalFloat),
        Field(key: "ngrok", kind: .bool, defaultValue: "false"),
        Field(key: "ngrok_authtoken", kind: .optionalString),
        Field(key: "ngrok_edge", kind: .optionalString),
        Field(key: "tokenizer_config_path", kind: .optionalString),
        Field(key: "disable_grammar_support", kind: .bool, defaultValue: "false"),
        Field(key: "env", kind: .bool, defaultValue: "false"),
        Field(key: "max_client_batch_size", kind: .integer, defaultValue: "4"),
        Field(key: "lora_adapters", kind: .optionalString),
        Field(key: "usage_stats", kind: .optionalRaw, defaultValue: "On"),
        Field(key: "payload_limit", kind: .integer, defaultValue: "2000000"),
        Field(key: "enable_prefill_logprobs", kind: .bool, defaultValue: "false"),
        Field(key: "graceful_termination_timeout", kind: .integer, defaultValue: "90"),
    ]

    /// Flags that take no value (clap `bool` fields).
    static let valuelessFlags: Set<String> = [
        "--trust-remote-code", "--disable-custom-kernels", "--json-output", "--ngrok", "--env",
        "--disable-grammar-support", "--enable-prefill-logprobs", "--disable-usage-stats",
        "--disable-crash-reports",
    ]

    static let usage = "Usage: text-generation-launcher [OPTIONS] --model-id <MODEL_ID>"

    static let help = """
        Text Generation Launcher (fake-engine)

        \(usage)

        Options:
              --model-id <MODEL_ID>  The name of the model to load [env: MODEL_ID=]
              --hostname <HOSTNAME>  The IP address to listen on [env: HOSTNAME=] [default: 0.0.0.0]
          -p, --port <PORT>          The port to listen on [env: PORT=] [default: 80]
              --api-key <API_KEY>    Require `Authorization: Bearer <API_KEY>` on generation routes [env: API_KEY=]
              --num-shard <NUM_SHARD>
                                     The number of shards to use [env: NUM_SHARD=]
          -h, --help                 Print help
          -V, --version              Print version
          (fake-engine: every other launcher flag is accepted and ignored)
        """

    /// Parses everything after argv[0].
    static func parse(_ arguments: [String], environment: (String) -> String?) throws(TGIUsageError) -> TGICommand {
        var given: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            index += 1
            switch token {
            case "-h", "--help": return .help
            case "-V", "--version": return .version
            default: break
            }
            guard token.hasPrefix("-"), token != "-" else {
                throw TGIUsageError(message: "unexpected argument '\(token)' found\n\n\(usage)")
            }
            var name = token
            var value: String?
            if let equals = token.firstIndex(of: "=") {
                name = String(token[..<equals])
                value = String(token[token.index(after: equals)...])
            }
            if name == "-p" { name = "--port" }
            if name == "-e" { name = "--env" }
            if name.hasPrefix("--") { name = "--" + String(name.dropFirst(2).map { $0 == "_" ? "-" : $0 }) }
            let key = String(name.drop { $0 == "-" }.map { $0 == "-" ? "_" : $0 })
            let field = fields.first { $0.key == key }

            if value == nil {
                let takesValue = !valuelessFlags.contains(name)
                if takesValue, index < arguments.count, !arguments[index].hasPrefix("--") {
                    value = arguments[index]
                    index += 1
                } else if takesValue, let field, field.kind != .optionalBool {
                    throw TGIUsageError(message: "a value is required for '\(name) <\(key.uppercased())>' but none was supplied")
                }
            }
            let resolved = value ?? "true"
            if field?.kind == .list {
                given[key] = given[key].map { $0 + "\u{0}" + resolved } ?? resolved
            } else {
                given[key] = resolved
            }
        }

        func lookup(_ field: Field) -> String? {
            if let value = given[field.key] { return value }
            if let name = field.environment, let value = environment(name), !value.isEmpty { return value }
            return nil
        }
        func integer(_ key: String) throws(TGIUsageError) -> Int? {
            guard let field = fields.first(where: { $0.key == key }), let text = lookup(field) else { return nil }
            guard let number = Int(text), number >= 0 else {
                let reason = text.isEmpty ? "cannot parse integer from empty string" : "invalid digit found in string"
                throw TGIUsageError(message: "invalid value '\(text)' for '--\(key.replacingOccurrences(of: "_", with: "-")) <\(key.uppercased())>': \(reason)")
            }
            return number
        }

        guard let modelID = lookup(fields[0]), !modelID.isEmpty else {
            throw TGIUsageError(message: "the following required arguments were not provided:\n  --model-id <MODEL_ID>\n\n\(usage)")
        }
        var options = TGIOptions(modelID: modelID)
        if let hostname = lookup(fields.first { $0.key == "hostname" }!) { options.hostname = hostname }
        if let port = try integer("port") {
            guard port <= 65535 else {
                throw TGIUsageError(message: "invalid value '\(port)' for '--port <PORT>': number too large to fit in target type")
            }
            options.port = port
        }
        options.numShard = try integer("num_shard")
        options.huggingfaceHubCache = lookup(fields.first { $0.key == "huggingface_hub_cache" }!)
        options.maxInputTokens = try integer("max_input_tokens")
        options.maxTotalTokens = try integer("max_total_tokens")
        options.apiKey = lookup(fields.first { $0.key == "api_key" }!)
        options.loggedArguments = fields.map { field in
            var display = lookup(field)
            if field.key == "hostname" { display = options.hostname }
            if field.key == "port" { display = String(options.port) }
            if field.key == "api_key", display != nil { display = "<redacted>" }
            return Logged(key: field.key, debugValue: debug(display, kind: field.kind, default: field.defaultValue))
        }
        return .launch(options)
    }

    // MARK: Rust Debug rendering

    /// One field value as `{:#?}` prints it inside the Args struct (4-space indent).
    static func debug(_ value: String?, kind: Kind, default defaultValue: String?) -> String {
        func some(_ inner: String) -> String { "Some(\n        \(inner),\n    )" }
        guard let value else {
            switch kind {
            case .list: return "[]"
            case .optionalRaw: return defaultValue.map(some) ?? "None"
            case .string: return rustString(defaultValue ?? "")
            default: return defaultValue ?? "None"
            }
        }
        switch kind {
        case .string: return rustString(value)
        case .optionalString: return some(rustString(value))
        case .integer: return value
        case .optionalInteger: return some(value)
        case .float: return rustFloat(value)
        case .optionalFloat: return some(rustFloat(value))
        case .bool: return FaultKnobs.isOn(value) ? "true" : "false"
        case .optionalBool: return some(FaultKnobs.isOn(value) ? "true" : "false")
        case .optionalEnum: return some(rustVariant(value))
        case .optionalRaw: return some(value)
        case .list:
            let items = value.split(separator: "\u{0}").map { "        \(rustString(String($0))),\n" }
            return "[\n" + items.joined() + "    ]"
        }
    }

    static func rustString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func rustFloat(_ text: String) -> String {
        guard let number = Double(text) else { return text }
        return number == number.rounded() && abs(number) < 1e15 ? "\(Int(number)).0" : String(number)
    }

    /// clap ValueEnum → variant name: "awq" → Awq, "bitsandbytes-nf4" → BitsandbytesNF4,
    /// "bfloat16" → BFloat16, "fp8_e5m2" → Fp8e5m2.
    static func rustVariant(_ text: String) -> String {
        let special = [
            "bitsandbytes-nf4": "BitsandbytesNF4", "bitsandbytes-fp4": "BitsandbytesFP4",
            "bfloat16": "BFloat16", "fp8_e5m2": "Fp8e5m2", "fp8_e4m3fn": "Fp8e4m3fn",
        ]
        if let name = special[text.lowercased()] { return name }
        return text.split(whereSeparator: { $0 == "-" || $0 == "_" })
            .map { $0.prefix(1).uppercased() + $0.dropFirst().lowercased() }.joined()
    }
}

// MARK: - Entry point

func runTGI(arguments: [String], environment: @escaping (String) -> String?) -> Never {
    let command: TGICommand
    do {
        command = try TGIArguments.parse(arguments, environment: environment)
    } catch {
        Console.err(error.description)
        exit(2)
    }
    switch command {
    case .version:
        Console.out("text-generation-launcher \(TGI.version)")
        exit(0)
    case .help:
        Console.out(TGIArguments.help)
        exit(0)
    case .launch(let options):
        let knobs: FaultKnobs
        do {
            knobs = try FaultKnobs.fromEnvironment(environment)
        } catch {
            Console.err(error.description)
            exit(2)
        }
        let token = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"].lazy.compactMap { environment($0) }.first { !$0.isEmpty }
        // huggingface_hub's own resolution: HF_HOME, else ~/.cache/huggingface (the image
        // sets ENV HF_HOME=/data); the hub cache is HF_HUB_CACHE, else
        // HUGGINGFACE_HUB_CACHE (which the launcher sets from --huggingface-hub-cache),
        // else $HF_HOME/hub.
        func nonEmpty(_ name: String) -> String? { environment(name).flatMap { $0.isEmpty ? nil : $0 } }
        let hfHome = nonEmpty("HF_HOME") ?? (nonEmpty("HOME") ?? "/root") + "/.cache/huggingface"
        let hubCache = nonEmpty("HF_HUB_CACHE") ?? options.huggingfaceHubCache ?? nonEmpty("HUGGINGFACE_HUB_CACHE") ?? hfHome + "/hub"
        TGIServer(options: options, knobs: knobs, hasToken: token != nil, hfHome: hfHome, hubCache: hubCache).run()
    }
}

// MARK: - The launcher process

final class TGIServer {
    let options: TGIOptions
    let knobs: FaultKnobs
    let hasToken: Bool
    let hfHome: String
    let hubCache: String
    let pid = getpid()
    let log = TGILog()
    let state: TGIServerState

    private var helperPID: pid_t?
    private var group: MultiThreadedEventLoopGroup?
    private var serverChannel: Channel?

    init(options: TGIOptions, knobs: FaultKnobs, hasToken: Bool, hfHome: String, hubCache: String) {
        self.options = options
        self.knobs = knobs
        self.hasToken = hasToken
        self.hfHome = hfHome
        self.hubCache = hubCache
        self.state = TGIServerState(options: options, log: log)
    }

    func run() -> Never {
        // Before any thread exists: the signals we wait for stay blocked everywhere except
        // in the main thread's sigtimedwait (as PID 1 in a container too: blocked signals
        // are queued, not dropped, even for a namespace's init).
        ProcessControl.blockAwaitedSignals()
        let startedAt = Clock.now()

        let fields = options.loggedArguments.map { "    \($0.key): \($0.debugValue),\n" }.joined()
        log.info("Args {\n" + fields + "}")
        if !hasToken { log.info("Token file not found \"\(hfHome)/token\"", target: "hf_hub") }
        if options.shardCount > 1 { log.info("Sharding model on \(options.shardCount) processes") }
        log.info("Using attention flashinfer - Prefix caching true")
        if options.maxTotalTokens == nil { log.info("Default `max_total_tokens` to \(options.effectiveMaxTotalTokens)") }
        if options.maxInputTokens == nil { log.info("Default `max_input_tokens` to \(options.effectiveMaxInputTokens)") }
        log.info("Default `max_batch_prefill_tokens` to \(options.effectiveMaxInputTokens + 50)")
        log.info("Using default cuda graphs [1, 2, 4, 8, 16, 32]")

        if knobs.escapeHelper { helperPID = ProcessControl.spawnSelf(.escapedHelper) }
        writePIDFile()

        log.info("Starting check and download process for \(options.modelID)", span: "download")
        if let reason = knobs.exitAtStart, !(reason == "gated-model" && hasToken) {
            sleepSeconds(TGI.downloadFailureDelay)
            let detail: [String]
            switch reason {
            case "bad-model": detail = TGIErrors.repositoryNotFound(options.modelID)
            case "gated-model": detail = TGIErrors.gatedRepository(options.modelID)
            default: detail = [reason]
            }
            log.error("Download encountered an error: \n" + detail.joined(separator: "\n"), span: "download")
            Console.err("Error: DownloadError")
            exit(1)
        }
        if let failure = storeWeights() {
            log.error("Download encountered an error: \n" + failure, span: "download")
            Console.err("Error: DownloadError")
            exit(1)
        }
        log.info("Successfully downloaded weights for \(options.modelID)", span: "download")
        for rank in 0..<options.shardCount { log.shard("Starting shard", rank: rank) }

        lifecycle(loadDeadline: startedAt + knobs.loadSeconds, startedAt: startedAt)
    }

    /// The download as huggingface_hub lays it out in the hub cache:
    /// `models--<org>--<name>/refs/main` holding the revision, and
    /// `snapshots/<revision>/model.safetensors` (here a few bytes). Already there: nothing
    /// is downloaded (the log says so, as the real download logs no "Download file" line
    /// for a cached file). A cache it cannot write fails like the real download, with
    /// Python's PermissionError in the launcher's error event. Returns that error text.
    private func storeWeights() -> String? {
        let repo = hubCache + "/models--" + options.modelID.split(separator: "/").joined(separator: "--")
        let snapshot = repo + "/snapshots/" + TGI.sha
        let weights = snapshot + "/model.safetensors"
        if access(weights, F_OK) == 0 {
            log.info("Files are already present on the host. Skipping download.")
            return nil
        }
        log.info("Download file: model.safetensors")
        for (path, contents) in [(repo + "/refs/main", TGI.sha), (weights, "fake-engine weights for \(options.modelID)\n")] {
            if let failed = Self.makeParents(of: path) ?? Self.write(contents, to: path) {
                return "PermissionError: [Errno \(failed.code)] \(String(cString: strerror(failed.code))): '\(failed.path)'"
            }
        }
        return nil
    }

    private static func makeParents(of path: String) -> (code: Int32, path: String)? {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0, errno != EEXIST { return (errno, prefix) }
        }
        return nil
    }

    private static func write(_ contents: String, to path: String) -> (code: Int32, path: String)? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return (errno, path) }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, bytes.count) }) == bytes.count else { return (errno, path) }
        return nil
    }

    // MARK: Lifecycle loop

    private enum Phase {
        case loading
        case serving
    }

    private func lifecycle(loadDeadline: Double, startedAt: Double) -> Never {
        var phase = Phase.loading
        var nextWaitLine = startedAt + TGI.shardWaitInterval
        var crashAt: Double?
        var hangAt: Double?

        while true {
            let deadline: Double? =
                switch phase {
                case .loading: min(loadDeadline, nextWaitLine)
                case .serving: [crashAt, hangAt].compactMap { $0 }.min()
                }
            if let signal = Self.waitForSignal(until: deadline) {
                handle(signal: signal, phase: phase)
            }
            let now = Clock.now()
            switch phase {
            case .loading where now >= loadDeadline:
                finishLoading(startedAt: startedAt)
                phase = .serving
                let listenedAt = Clock.now()
                crashAt = knobs.crashAfter.map { listenedAt + $0 }
                hangAt = knobs.hangAfter.map { listenedAt + $0 }
            case .loading where now >= nextWaitLine:
                nextWaitLine += TGI.shardWaitInterval
                for rank in 0..<options.shardCount { log.shard("Waiting for shard to be ready...", rank: rank) }
            case .serving:
                if let due = hangAt, now >= due {
                    hangAt = nil
                    state.hung.store(true, ordering: .releasing)
                    log.warn("FAKE_HANG_AFTER: from now on no request gets an answer", target: "fake_engine")
                }
                if let due = crashAt, now >= due { crash() }
            default:
                break
            }
        }
    }

    /// The next awaited signal, or nil when `deadline` passes first (or on EINTR).
    static func waitForSignal(until deadline: Double?) -> Int32? {
        var set = ProcessControl.awaitedSignals
        var info = siginfo_t()
        let result: Int32
        if let deadline {
            let remaining = max(0, deadline - Clock.now())
            var timeout = timespec(tv_sec: Int(remaining), tv_nsec: Int((remaining - Double(Int(remaining))) * 1e9))
            result = sigtimedwait(&set, &info, &timeout)
        } else {
            result = sigwaitinfo(&set, &info)
        }
        return result > 0 ? result : nil
    }

    private func handle(signal: Int32, phase: Phase) {
        switch signal {
        case SIGCHLD:
            var status: Int32 = 0
            while true {
                let reaped = waitpid(-1, &status, WNOHANG)
                guard reaped > 0 else { break }
                if reaped == helperPID { helperPID = nil }
            }
        case SIGTERM, SIGINT:
            if knobs.ignoreSigterm {
                let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
                log.warn("Received \(name); ignoring it (FAKE_IGNORE_SIGTERM=1)", target: "fake_engine")
                return
            }
            shutDown(serving: phase == .serving)
        default:
            break
        }
    }

    private func finishLoading(startedAt: Double) {
        let elapsed = max(Clock.now() - startedAt, 0.01)
        for rank in 0..<options.shardCount {
            log.info("Server started at unix:///tmp/text-generation-server-\(rank)")
        }
        for rank in 0..<options.shardCount {
            let seconds = String(Double(Int(elapsed * 0.8 * 1000)) / 1000)
            log.shard("Shard ready in \(seconds)s", rank: rank)
        }
        log.info("Starting Webserver")
        let v3 = "text_generation_router_v3"
        log.info("backends/v3/src/lib.rs:125: Warming up model", target: v3)
        log.info("backends/v3/src/lib.rs:137: Setting max batch total tokens to 291520", target: v3)
        log.info("backends/v3/src/lib.rs:166: Using backend V3", target: v3)
        if options.maxInputTokens == nil {
            log.info("backends/v3/src/main.rs:162: Maximum input tokens defaulted to \(options.effectiveMaxInputTokens)", target: "text_generation_router")
        }
        if options.maxTotalTokens == nil {
            log.info("backends/v3/src/main.rs:168: Maximum total tokens defaulted to \(options.effectiveMaxTotalTokens)", target: "text_generation_router")
        }
        log.info("router/src/server.rs:1873: Using the Hugging Face API", target: TGILog.server)
        log.info("router/src/server.rs:2585: Serving revision \(TGIErrors.fakeSHA(options.modelID)) of model \(options.modelID)", target: TGILog.server)
        let host: String
        if let address = options.bindAddress {
            host = address
        } else {
            log.warn("router/src/server.rs:1901: Invalid hostname, defaulting to 0.0.0.0", target: TGILog.server)
            host = "0.0.0.0"
        }
        log.info("router/src/server.rs:2311: Connected", target: TGILog.server)

        // The router's TcpListener::bind: SO_REUSEADDR, bind, listen, all at this point.
        let fd: Int32
        switch APISocket.bind(host: host, port: options.port) {
        case .success(let bound):
            fd = bound
        case .failure(let failure):
            webserverCrashed(bindError: failure)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        let state = self.state
        do {
            serverChannel = try FakeHTTPServer.serve(on: fd, group: group) { TGIHTTPHandler(state: state) }
        } catch {
            webserverCrashed(bindError: APISocket.Failure(pythonException: "\(error)", code: (error as? IOError)?.errnoCode ?? EINVAL))
        }
    }

    // MARK: Exits

    /// SIGTERM/SIGINT: the launcher stops the webserver, then the shards, and exits 0.
    private func shutDown(serving: Bool) -> Never {
        if serving {
            log.info("Terminating webserver")
            log.info("Waiting for webserver to gracefully shutdown")
            log.info("router/src/server.rs:2593: signal received, starting graceful shutdown", target: TGILog.server)
            try? serverChannel?.close().wait()
            log.info("webserver terminated")
        }
        stopShards()
        exit(0)
    }

    private func stopShards() {
        log.info("Shutting down shards")
        for rank in 0..<options.shardCount {
            log.shard("Terminating shard", rank: rank)
            log.shard("Waiting for shard to gracefully shutdown", rank: rank)
            log.shard("shard terminated", rank: rank)
        }
    }

    /// The router panics on a failed bind; the launcher sees its webserver die.
    private func webserverCrashed(bindError failure: APISocket.Failure) -> Never {
        let (kind, message): (String, String) =
            switch failure.code {
            case EADDRINUSE: ("AddrInUse", "Address already in use")
            case EACCES, EPERM: ("PermissionDenied", "Permission denied")
            case EADDRNOTAVAIL: ("AddrNotAvailable", "Cannot assign requested address")
            default: ("Uncategorized", String(cString: strerror(failure.code)))
            }
        Console.err("thread 'main' panicked at router/src/server.rs:2620:67:")
        Console.err("called `Result::unwrap()` on an `Err` value: Os { code: \(failure.code), kind: \(kind), message: \"\(message)\" }")
        Console.err("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace")
        log.error("Webserver Crashed")
        stopShards()
        Console.err("Error: WebserverFailed")
        exit(1)
    }

    /// FAKE_CRASH_AFTER: by signal (nothing logged by the launcher), or a shard that dies
    /// (CUDA error) and takes the launcher down with `Error: ShardFailed`.
    private func crash() -> Never {
        if let signal = knobs.crashSignal {
            log.error("FAKE_CRASH_AFTER: killing the launcher with signal \(signal)", target: "fake_engine")
            Faults.killSelf(with: signal)
        }
        log.shard("Shard complete standard error output:\n\n" + TGIErrors.shardCrash.joined(separator: "\n"), rank: 0, level: .error)
        log.shard("Shard process was signaled to shutdown with signal 6", rank: 0, level: .error)
        log.error("Shard 0 crashed")
        log.info("Terminating webserver")
        log.info("Waiting for webserver to gracefully shutdown")
        try? serverChannel?.close().wait()
        log.info("webserver terminated")
        stopShards()
        Console.err("Error: ShardFailed")
        exit(knobs.crashCode)
    }

    private func writePIDFile() {
        guard let path = knobs.pidFile else { return }
        Faults.writePIDFile(path, main: pid, engineCore: nil, helper: helperPID)
    }

    private func sleepSeconds(_ seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }
}

// MARK: - Error texts

/// What TGI's Python side prints for the failures the fixture imitates (the launcher
/// relays the download process's stderr in one ERROR event).
enum TGIErrors {
    static let sitePackages = "/usr/src/.venv/lib/python3.11/site-packages"

    /// A stable fake 40-hex commit for a model id, for "Serving revision ...".
    static func fakeSHA(_ model: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var out = ""
        for round in 0..<3 {
            for byte in model.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            hash = (hash ^ UInt64(round)) &* 0x0000_0100_0000_01b3
            let hex = String(hash, radix: 16)
            out += String(repeating: "0", count: 16 - hex.count) + hex
        }
        return String(out.prefix(40))
    }

    static func frames(_ model: String) -> [String] {
        [
            "Traceback (most recent call last):",
            "  File \"/usr/src/.venv/bin/text-generation-server\", line 10, in <module>",
            "    sys.exit(app())",
            "  File \"\(sitePackages)/text_generation_server/cli.py\", line 211, in download_weights",
            "    utils.weight_hub_files(model_id, revision, extension)",
            "  File \"\(sitePackages)/text_generation_server/utils/hub.py\", line 43, in weight_hub_files",
            "    info = api.model_info(model_id, revision=revision)",
            "  File \"\(sitePackages)/huggingface_hub/hf_api.py\", line 2532, in model_info",
            "    hf_raise_for_status(r)",
            "  File \"\(sitePackages)/huggingface_hub/utils/_http.py\", line 459, in hf_raise_for_status",
            "    raise _format(RepositoryNotFoundError, message, response) from e",
        ]
    }

    static func repositoryNotFound(_ model: String) -> [String] {
        frames(model) + [
            "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-6745f0c1-2b1e3f4a5c6d7e8f90a1b2c3)",
            "",
            "Repository Not Found for url: https://huggingface.co/api/models/\(model)/revision/main.",
            "Please make sure you specified the correct `repo_id` and `repo_type`.",
            "If you are trying to access a private or gated repo, make sure you are authenticated. For more details, see https://huggingface.co/docs/huggingface_hub/authentication",
            "Invalid username or password.",
        ]
    }

    static func gatedRepository(_ model: String) -> [String] {
        frames(model).dropLast() + [
            "    raise _format(GatedRepoError, message, response) from e",
            "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6745f0c1-3c2f4e5a6b7c8d9e0f1a2b3c)",
            "",
            "Cannot access gated repo for url https://huggingface.co/api/models/\(model)/revision/main.",
            "Access to model \(model) is restricted. You must have access to it and be authenticated to access it. Please log in.",
        ]
    }

    static let shardCrash = [
        "Traceback (most recent call last):",
        "  File \"\(sitePackages)/text_generation_server/models/flash_causal_lm.py\", line 1907, in generate_token",
        "    out, speculative_logits = self.forward(batch, adapter_data)",
        "RuntimeError: CUDA error: an illegal memory access was encountered",
    ]
}
