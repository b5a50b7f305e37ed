#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

// `ollama serve` as Ollama 0.12 runs it on Linux: settings from the environment
// (OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_KEEP_ALIVE), slog text lines on stderr, gin's access
// lines on stdout, listening at once (unlike vLLM, "answers" long before a model is
// usable), a runner child (`ollama runner --model <blob> --port <n>`) started when a model
// is loaded, and on SIGTERM/SIGINT the runners stopped and exit 0.

enum Ollama {
    static let version = "0.12.6"
    static let defaultHost = "127.0.0.1"
    static let defaultPort = 11434
    /// How long a runner gets to exit on shutdown before SIGKILL.
    static let runnerStopGrace = 5.0

    /// OLLAMA_HOST as envconfig.Host reads it: `host:port`, `host`, `:port`, with or
    /// without `http://`; a missing host is 127.0.0.1 (`:port` alone: all interfaces), a
    /// missing or invalid port 11434.
    static func listenAddress(_ value: String?) -> (host: String?, port: Int) {
        var text = (value ?? "").trimmingCharacters(in: " \t")
        var defaultPort = defaultPort
        if let range = text.firstRange(of: "://") {
            let scheme = text[..<range.lowerBound]
            if scheme == "http" { defaultPort = 80 } else if scheme == "https" { defaultPort = 443 }
            text = String(text[range.upperBound...])
        }
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        // Split host and port the way net.SplitHostPort does, brackets for IPv6.
        var host: String
        var portText: String?
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            portText = rest.hasPrefix(":") ? String(rest.dropFirst()) : nil
        } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.isEmpty { return (nil, Int(portText ?? "").flatMap { (0...65535).contains($0) ? $0 : nil } ?? defaultPort) }
        } else {
            host = text
        }
        if host.isEmpty { host = defaultHost }
        let port = portText.flatMap(Int.init).flatMap { (0...65535).contains($0) ? $0 : nil } ?? defaultPort
        return (host, port)
    }

    /// format.HumanBytes: "1.3 GB", "100 MB", "485 B".
    static func humanBytes(_ bytes: Int64) -> String {
        let units: [(Int64, String)] = [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "KB")]
        guard let (scale, unit) = units.first(where: { bytes >= $0.0 }) else { return "\(bytes) B" }
        let value = Double(bytes) / Double(scale)
        if value >= 10 || value == value.rounded(.towardZero) { return "\(Int(value)) \(unit)" }
        return "\(Double(Int(value * 10)) / 10) \(unit)"
    }
}

/// Ollama-mode knobs on top of the shared FaultKnobs (main.swift documents them).
struct OllamaKnobs: Sendable {
    /// FAKE_PULL_SECONDS: how long the big layer of a pull takes.
    var pullSeconds = 0.5
    /// FAKE_PULL_UNKNOWN: comma-separated names the "registry" does not have.
    var unknownModels: [String] = []
    /// FAKE_MODEL_BYTES: size of the model layer (default: guessed from the name).
    var modelBytes: Int64?
    /// FAKE_NO_RUNNER=1: load without a runner child.
    var noRunner = false
    /// FAKE_PULL_SPLIT=1: send every pull line in two chunks, split mid-JSON, 10 ms apart
    /// (a client must reassemble lines across reads).
    var splitPullLines = false
    /// FAKE_REGISTRY_UNREACHABLE=1: every pull fails at the manifest, as offline.
    var registryUnreachable = false
    /// FAKE_EMBEDDING_MODELS: comma-separated names that only embed (besides any name
    /// containing "embed").
    var embeddingModels: [String] = []

    static func fromEnvironment(_ environment: (String) -> String?) throws(FaultKnobs.InvalidKnob) -> OllamaKnobs {
        var knobs = OllamaKnobs()
        if let text = environment("FAKE_PULL_SECONDS"), !text.isEmpty {
            guard let value = Double(text), value >= 0, value.isFinite else {
                throw FaultKnobs.InvalidKnob(name: "FAKE_PULL_SECONDS", value: text, expected: "a number of seconds >= 0")
            }
            knobs.pullSeconds = value
        }
        if let text = environment("FAKE_MODEL_BYTES"), !text.isEmpty {
            guard let value = Int64(text), value > 0 else {
                throw FaultKnobs.InvalidKnob(name: "FAKE_MODEL_BYTES", value: text, expected: "a number of bytes > 0")
            }
            knobs.modelBytes = value
        }
        knobs.unknownModels = (environment("FAKE_PULL_UNKNOWN") ?? "").split(separator: ",")
            .map { String($0).trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
        knobs.noRunner = FaultKnobs.isOn(environment("FAKE_NO_RUNNER"))
        knobs.splitPullLines = FaultKnobs.isOn(environment("FAKE_PULL_SPLIT"))
        knobs.registryUnreachable = FaultKnobs.isOn(environment("FAKE_REGISTRY_UNREACHABLE"))
        knobs.embeddingModels = (environment("FAKE_EMBEDDING_MODELS") ?? "").split(separator: ",")
            .map { String($0).trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
        return knobs
    }
}

/// Ollama's log shapes: slog's text handler on stderr
/// (`time=2025-10-06T10:00:00.123Z level=INFO source=routes.go:1564 msg="Listening on …"`)
/// and gin's access log on stdout.
struct OllamaLog: Sendable {
    func info(_ source: String, _ message: String, _ attributes: [(String, String)] = []) {
        line("INFO", source, message, attributes)
    }
    func warning(_ source: String, _ message: String, _ attributes: [(String, String)] = []) {
        line("WARN", source, message, attributes)
    }
    func error(_ source: String, _ message: String, _ attributes: [(String, String)] = []) {
        line("ERROR", source, message, attributes)
    }

    private func line(_ level: String, _ source: String, _ message: String, _ attributes: [(String, String)]) {
        var text = "time=\(Self.stamp()) level=\(level) source=\(source) msg=\(Self.value(message))"
        for (key, value) in attributes { text += " \(key)=\(Self.value(value))" }
        Console.err(text)
    }

    /// `[GIN] 2025/10/06 - 10:00:00 | 200 |      41.209µs |       127.0.0.1 | GET      "/"`
    func gin(status: Int, seconds: Double, client: String, method: String, path: String) {
        let latency: String
        if seconds < 0.001 {
            latency = "\(Double(Int(seconds * 1e6 * 1000)) / 1000)µs"
        } else if seconds < 1 {
            latency = "\(Double(Int(seconds * 1e3 * 1000)) / 1000)ms"
        } else {
            latency = "\(Double(Int(seconds * 1000)) / 1000)s"
        }
        func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        let methodField = method + String(repeating: " ", count: max(0, 7 - method.count))
        Console.out("[GIN] \(Self.ginStamp()) | \(status) | \(pad(latency, 13)) | \(pad(client, 15)) | \(methodField)  \(JSON.quote(path))")
    }

    /// slog quotes a value with spaces, quotes, '=' or nothing in it.
    static func value(_ text: String) -> String {
        let needsQuotes = text.isEmpty || text.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.asciiValue.map { $0 < 0x20 } == true }
        return needsQuotes ? JSON.quote(text) : text
    }

    static func stamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let millis = String(Int(spec.tv_nsec) / 1_000_000)
        return format("%Y-%m-%dT%H:%M:%S", spec.tv_sec) + "." + String(repeating: "0", count: 3 - millis.count) + millis + "Z"
    }

    static func ginStamp() -> String { format("%Y/%m/%d - %H:%M:%S", time(nil)) }

    private static func format(_ pattern: String, _ seconds: time_t) -> String {
        var now = seconds
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Entry point for `ollama ...`.
func runOllama(argv0: String, arguments: [String], environment: @escaping (String) -> String?) -> Never {
    switch arguments.first {
    case nil, "-h", "--help", "help":
        Console.out(
            """
            Large language model runner

            Usage:
              ollama [flags]
              ollama [command]

            Available Commands:
              serve       Start ollama
              (fake-engine emulates only `serve`)

            Flags:
              -h, --help      help for ollama
              -v, --version   Show version information
            """)
        exit(0)
    case "-v", "--version":
        // What `ollama -v` prints when no server answers.
        Console.err("Warning: could not connect to a running Ollama instance")
        Console.err("Warning: client version is \(Ollama.version)")
        exit(0)
    case "runner":
        OllamaRunner.run(environment: environment)
    case "serve", "start":
        // cobra parses flags first (an unknown one is "unknown flag"), then serve's
        // Args: cobra.ExactArgs(0) refuses any positional argument (cmd/cmd.go).
        let extra = arguments.dropFirst()
        if let flag = extra.first(where: { $0.hasPrefix("-") }) {
            Console.err("Error: unknown flag: \(flag)")
            exit(1)
        }
        if !extra.isEmpty {
            Console.err("Error: accepts 0 arg(s), received \(extra.count)")
            exit(1)
        }
        // RunServer's first step, initializeKeypair, needs os.UserHomeDir(), which fails
        // on an unset or empty HOME; cobra prints the error and Ollama exits 1.
        guard environment("HOME").map({ !$0.isEmpty }) ?? false else {
            Console.err("Error: $HOME is not defined")
            exit(1)
        }
        let knobs: FaultKnobs
        let ollamaKnobs: OllamaKnobs
        do {
            knobs = try FaultKnobs.fromEnvironment(environment)
            ollamaKnobs = try OllamaKnobs.fromEnvironment(environment)
        } catch {
            Console.err(error.description)
            exit(2)
        }
        OllamaServer(argv0: argv0, knobs: knobs, ollamaKnobs: ollamaKnobs, environment: environment).run()
    case let command?:
        let known = ["create", "show", "run", "stop", "pull", "push", "signin", "signout", "list", "ps", "cp", "rm"]
        if known.contains(command) {
            Console.err("Error: fake-engine emulates only `ollama serve`, not `ollama \(command)`")
        } else {
            Console.err("Error: unknown command \"\(command)\" for \"ollama\"")
        }
        exit(1)
    }
}

/// `ollama runner --model <blob> --port <n>`: idles like a runner holding a model. Default
/// SIGTERM action; nothing ties it to the server's life (the orphan agentron must clean up
/// when the server is SIGKILLed).
enum OllamaRunner {
    static func run(environment: (String) -> String?) -> Never {
        ProcessControl.setProcessName("ollama")
        ProcessControl.restoreDefaultSignals()
        if FaultKnobs.isOn(environment("FAKE_IGNORE_SIGTERM")) { signal(SIGTERM, SIG_IGN) }
        while true { pause() }
    }
}

/// One `ollama serve` process.
final class OllamaServer {
    let argv0: String
    let knobs: FaultKnobs
    let ollamaKnobs: OllamaKnobs
    let environment: (String) -> String?
    let log = OllamaLog()
    private var state: OllamaServerState?
    private var group: MultiThreadedEventLoopGroup?
    private var serverChannel: Channel?
    private var helperPID: pid_t?

    init(argv0: String, knobs: FaultKnobs, ollamaKnobs: OllamaKnobs, environment: @escaping (String) -> String?) {
        self.argv0 = argv0
        self.knobs = knobs
        self.ollamaKnobs = ollamaKnobs
        self.environment = environment
    }

    func run() -> Never {
        ProcessControl.blockAwaitedSignals()
        let (host, port) = Ollama.listenAddress(environment("OLLAMA_HOST"))
        let display = host.map { $0.contains(":") ? "[\($0)]:\(port)" : "\($0):\(port)" } ?? "[::]:\(port)"
        let keepAlive = KeepAlive.fromEnvironment(environment("OLLAMA_KEEP_ALIVE"))
        let explicitModels = environment("OLLAMA_MODELS").flatMap { $0.isEmpty ? nil : $0 }
        // serve refuses to start without HOME (runOllama), so it is set here.
        let modelsDirectory = explicitModels ?? ((environment("HOME") ?? "") + "/.ollama/models")

        let config = [
            "OLLAMA_HOST:http://\(display)", "OLLAMA_KEEP_ALIVE:\(keepAlive.goString)", "OLLAMA_MODELS:\(modelsDirectory)",
            "OLLAMA_CONTEXT_LENGTH:\(environment("OLLAMA_CONTEXT_LENGTH") ?? "4096")",
        ]
        log.info("routes.go:1511", "server config", [("env", "map[\(config.joined(separator: " "))]")])
        let pulled = explicitModels.map { OllamaModelStore.load(directory: $0, modelBytes: ollamaKnobs.modelBytes) } ?? [:]
        log.info("images.go:522", "total blobs: \(pulled.count * 4)")
        log.info("images.go:529", "total unused blobs removed: 0")

        if knobs.escapeHelper { helperPID = ProcessControl.spawnSelf(.escapedHelper) }
        if let reason = knobs.exitAtStart {
            if let path = knobs.pidFile { Faults.writePIDFile(path, main: getpid(), engineCore: nil, helper: helperPID) }
            Console.err("Error: \(reason)")
            exit(1)
        }

        let socketFD: Int32
        switch APISocket.bind(host: host, port: port) {
        case .success(let fd):
            socketFD = fd
        case .failure(let failure):
            // What net.Listen's error looks like when cobra prints it.
            let reason = failure.code == 0 ? failure.pythonException : String(cString: strerror(failure.code)).lowercased()
            Console.err("Error: listen tcp \(display): bind: \(reason)")
            exit(1)
        }

        let state = OllamaServerState(
            log: log, knobs: knobs, ollamaKnobs: ollamaKnobs, defaultKeepAlive: keepAlive, modelsDirectory: modelsDirectory,
            persistsModels: explicitModels != nil, argv0: argv0, helperPID: helperPID, pulled: pulled)
        self.state = state
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        do {
            serverChannel = try FakeHTTPServer.serve(on: socketFD, group: group) { OllamaHTTPHandler(state: state) }
        } catch {
            Console.err("Error: listen tcp \(display): \(error)")
            exit(1)
        }
        log.info("routes.go:1564", "Listening on \(display) (version \(Ollama.version))")
        log.info("runner.go:80", "discovering available GPUs...")
        log.info(
            "types.go:60", "inference compute",
            [("id", "cpu"), ("library", "cpu"), ("compute", ""), ("name", "cpu"), ("description", "cpu"), ("libdirs", "ollama"),
             ("driver", ""), ("pci_id", ""), ("type", ""), ("total", "31.3 GiB"), ("available", "28.1 GiB")])
        state.writePIDFile()
        lifecycle(state)
    }

    // MARK: - Lifecycle loop

    private func lifecycle(_ state: OllamaServerState) -> Never {
        let listenedAt = Clock.now()
        var crashAt = knobs.crashAfter.map { listenedAt + $0 }
        var hangAt = knobs.hangAfter.map { listenedAt + $0 }
        while true {
            let deadline = [crashAt, hangAt].compactMap { $0 }.min()
            if let signal = VLLMServer.waitForSignal(until: deadline) {
                handle(signal: signal, state: state)
            }
            let now = Clock.now()
            if let due = hangAt, now >= due {
                hangAt = nil
                state.hung.store(true, ordering: .releasing)
                log.warning("fake_engine.go:1", "FAKE_HANG_AFTER: from now on no request gets an answer")
            }
            if let due = crashAt, now >= due {
                crashAt = nil
                crash()
            }
        }
    }

    private func handle(signal: Int32, state: OllamaServerState) {
        switch signal {
        case SIGCHLD:
            var status: Int32 = 0
            while true {
                let reaped = waitpid(-1, &status, WNOHANG)
                guard reaped > 0 else { return }
                if state.runnerExited(reaped) {
                    log.info("sched.go:470", "runner exited", [("pid", String(reaped))])
                } else if reaped == helperPID {
                    helperPID = nil
                }
            }
        case SIGTERM, SIGINT:
            if knobs.ignoreSigterm {
                log.warning("fake_engine.go:1", "received \(signal == SIGTERM ? "terminated" : "interrupt"); ignoring it (FAKE_IGNORE_SIGTERM=1)")
                return
            }
            shutDown(state)
        default:
            break
        }
    }

    /// Serve's signal handler: close the server, unload every runner, exit 0.
    private func shutDown(_ state: OllamaServerState) -> Never {
        try? serverChannel?.close().wait()
        for runner in state.runnerPIDs() {
            ProcessControl.terminate(runner, grace: Ollama.runnerStopGrace)
        }
        exit(0)
    }

    /// FAKE_CRASH_AFTER: die by signal, or exit with the code like a Go panic; either way
    /// the runners are left behind, orphaned.
    private func crash() -> Never {
        if let signal = knobs.crashSignal {
            log.error("fake_engine.go:1", "FAKE_CRASH_AFTER: killing the server with signal \(signal)")
            Faults.killSelf(with: signal)
        }
        Console.err("panic: FAKE_CRASH_AFTER: the server crashes with exit code \(knobs.crashCode)")
        Console.err("")
        Console.err("goroutine 1 [running]:")
        Console.err("main.main()")
        Console.err("\t/go/src/github.com/ollama/ollama/main.go:12 +0x13")
        exit(knobs.crashCode)
    }
}

/// Pulled models kept under an explicit OLLAMA_MODELS, so a restarted server still has
/// them (a second pull of the same model is then a cache hit, as in Ollama).
enum OllamaModelStore {
    static func writeManifest(path: String, info: OllamaModelInfo) {
        makeDirectories(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
        let layers = info.layers.enumerated().map { index, layer in
            let type = ["model", "template", "license", "params"][min(index, 3)]
            return #"{"mediaType":"application/vnd.ollama.image.\#(type)","digest":"\#(layer.digest)","size":\#(layer.size)}"#
        }
        let text =
            #"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#
            + #""config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:\#(info.manifestDigest)","size":561},"#
            + #""layers":[\#(layers.joined(separator: ","))]}"#
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    static func load(directory: String, modelBytes: Int64?) -> [String: OllamaModelInfo] {
        var result: [String: OllamaModelInfo] = [:]
        for relative in files(under: directory + "/manifests", prefix: "manifests", depth: 4) {
            guard let name = OllamaName(manifestPath: relative) else { continue }
            result[name.key] = OllamaModelInfo(name: name, modelBytes: modelBytes)
        }
        return result
    }

    /// Regular files exactly `depth` levels below `path` (host/namespace/model/tag).
    private static func files(under path: String, prefix: String, depth: Int) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var found: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            if depth == 1 {
                if entry.pointee.d_type != UInt8(DT_DIR) { found.append(prefix + "/" + name) }
            } else if entry.pointee.d_type == UInt8(DT_DIR) {
                found += files(under: path + "/" + name, prefix: prefix + "/" + name, depth: depth - 1)
            }
        }
        return found
    }

    private static func makeDirectories(_ path: String) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            mkdir(current, 0o755)
        }
    }
}
