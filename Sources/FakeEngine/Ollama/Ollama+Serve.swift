import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

// `ollama serve` as Ollama 0.12 runs it on Linux: settings from the environment
// (OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_KEEP_ALIVE), slog lines on stderr, gin's access lines
// on stdout, listening at once (long before a model is usable), a runner child per loaded
// model, and on SIGTERM/SIGINT the runners stopped and exit 0.

enum Ollama {
    static let version = "0.12.6"

    /// `ollama ...`.
    static func main(argv0: String, arguments: [String], environment: (String) -> String?) -> Never {
        switch arguments.first {
        case "-v", "--version":
            // What `ollama -v` prints when no server answers.
            Console.err(
                "Warning: could not connect to a running Ollama instance\nWarning: client version is \(version)")
            exit(0)
        case "runner":
            // `ollama runner --model <blob> --port <n>`, started by serve: holds a model until
            // SIGTERM. Nothing ties it to the server's life: the orphan agentron cleans up.
            Children.idle(comm: "ollama")
        case "serve", "start":
            // cobra parses flags first, then serve's Args: cobra.ExactArgs(0) (cmd/cmd.go).
            let extra = arguments.dropFirst()
            if let flag = extra.first(where: { $0.hasPrefix("-") }) { fail("unknown flag: \(flag)") }
            if !extra.isEmpty { fail("accepts 0 arg(s), received \(extra.count)") }
            // RunServer's first step, initializeKeypair, needs os.UserHomeDir().
            guard let home = environment("HOME"), !home.isEmpty else { fail("$HOME is not defined") }
            OllamaServer(argv0: argv0, home: home, knobs: Knobs.fromEnvironment(environment), environment: environment)
                .run()
        default:
            Console.err("Usage:\n  ollama serve\n  ollama -v\n(fake-engine emulates only these)")
            exit(arguments.isEmpty ? 0 : 1)
        }
    }

    /// cobra prints the command's error so, and Ollama exits 1.
    static func fail(_ message: String) -> Never {
        Console.err("Error: \(message)")
        exit(1)
    }

    /// slog's text handler on stderr: `time=2025-10-06T10:00:00.123Z level=INFO
    /// source=routes.go:1564 msg="Listening on …"`; a value with a space, a quote or '='
    /// in it, or none, is quoted.
    static func log(_ level: String, _ source: String, _ message: String, _ attributes: [(String, String)] = []) {
        let pairs = ([("msg", message)] + attributes).map { key, value in
            "\(key)="
                + (value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
                    ? JSON.quote(value) : value)
        }
        Console.err(
            "time=\(Clock.wall("%Y-%m-%dT%H:%M:%S", digits: 3))Z level=\(level) source=\(source) "
                + pairs.joined(separator: " "))
    }

    /// OLLAMA_HOST as envconfig.Host reads it: `host:port`, `host`, `:port` (every
    /// interface), `[v6]:port`, with or without a scheme; no host is 127.0.0.1, no port 11434.
    static func listenAddress(_ value: String?) -> (host: String?, port: Int) {
        var text = value?.trimmed ?? ""
        if let scheme = text.firstRange(of: "://") { text = String(text[scheme.upperBound...]) }
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        var (host, port): (String?, Substring?) = (text, nil)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            port = text[close...].dropFirst().hasPrefix(":") ? text[close...].dropFirst(2) : nil
        } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            (host, port) = (colon == text.startIndex ? nil : String(text[..<colon]), text[text.index(after: colon)...])
        }
        let number = port.flatMap { Int($0) }.flatMap { (0...65535).contains($0) ? $0 : nil } ?? 11434
        return (host == "" ? "127.0.0.1" : host, number)
    }
}

/// One `ollama serve` process.
final class OllamaServer: Engine {
    let knobs: Knobs
    let state: OllamaState
    let service: HTTPService
    let host: String?
    let port: Int
    /// "127.0.0.1:11434", "[::1]:11434", "[::]:11434": how Go prints the address.
    let display: String
    private var channel: Channel?

    init(argv0: String, home: String, knobs: Knobs, environment: (String) -> String?) {
        self.knobs = knobs
        let (host, port) = Ollama.listenAddress(environment("OLLAMA_HOST"))
        let display = host.map { $0.contains(":") ? "[\($0)]:\(port)" : "\($0):\(port)" } ?? "[::]:\(port)"
        (self.host, self.port, self.display) = (host, port, display)
        let keepAlive = KeepAlive.fromEnvironment(environment("OLLAMA_KEEP_ALIVE"))
        let explicitModels = environment("OLLAMA_MODELS").flatMap { $0.isEmpty ? nil : $0 }
        let models = explicitModels ?? home + "/.ollama/models"
        let config =
            "OLLAMA_HOST:http://\(display) OLLAMA_KEEP_ALIVE:\(KeepAlive.goString(keepAlive)) OLLAMA_MODELS:\(models)"
        Ollama.log("INFO", "routes.go:1511", "server config", [("env", "map[\(config)]")])
        let helper = knobs.escapeHelper ? Children.spawn(ChildRole.escapedHelper.argv) : nil
        let state = OllamaState(
            knobs: knobs, defaultKeepAlive: keepAlive, modelsDirectory: models, persists: explicitModels != nil,
            argv0: argv0, helper: helper)
        self.state = state
        service = HTTPService(
            maximumBodyBytes: 32 << 20, tooLarge: OllamaRoutes.error(.payloadTooLarge, "http: request body too large"),
            headers: { [("date", Clock.httpDate())] },
            log: { request, status, peer, seconds in
                // gin's access log: `[GIN] 2025/10/06 - 10:00:00 | 200 |  41.209µs |  127.0.0.1 | GET      "/"`.
                let (scale, unit) = seconds < 0.001 ? (1e6, "µs") : seconds < 1 ? (1e3, "ms") : (1, "s")
                let latency = String(Double(Int(min(seconds, Knobs.maximumSeconds) * scale * 1000)) / 1000) + unit
                func pad(_ text: String, _ width: Int) -> String {
                    String(repeating: " ", count: max(0, width - text.count)) + text
                }
                let method =
                    request.method.rawValue + String(repeating: " ", count: max(0, 7 - request.method.rawValue.count))
                let fields = [
                    "\(status.code)", pad(latency, 13), pad(peer?.ipAddress ?? "-", 15),
                    "\(method)  \(JSON.quote(request.head.uri))",
                ]
                Console.out("[GIN] \(Clock.wall("%Y/%m/%d - %H:%M:%S")) | " + fields.joined(separator: " | "))
            },
            route: { OllamaRoutes.reply($0, state: state) })
    }

    func run() -> Never {
        if let reason = knobs.exitAtStart {
            state.writePIDFile()
            Ollama.fail(reason)
        }
        // Nothing to load before listening: loads happen per request.
        runLifecycle(startedAt: Clock.now(), loadSeconds: 0)
    }

    func startServing() {
        let fd: Int32
        switch Socket.bind(host: host, port: port) {
        case .success(let bound): fd = bound
        // net.Listen's error as cobra prints it: "Error: listen tcp H:P: bind: address already in use".
        case .failure(let failure):
            Ollama.fail("listen tcp \(display): bind: \(failure.resolverMessage ?? failure.message.lowercased())")
        }
        do {
            channel = try service.serve(on: fd)
        } catch {
            Ollama.fail("listen tcp \(display): \(error)")
        }
        Ollama.log("INFO", "routes.go:1564", "Listening on \(display) (version \(Ollama.version))")
        state.writePIDFile()
    }

    func childExited(_ pid: pid_t) {
        if state.runnerExited(pid) { Ollama.log("INFO", "sched.go:470", "runner exited", [("pid", String(pid))]) }
    }

    /// Serve's signal handler: close the server, stop every runner, exit 0.
    func shutDown(serving: Bool) -> Never {
        try? channel?.close().wait()
        for runner in state.store.withLock({ Array($0.runners.keys) }) { Children.terminate(runner) }
        exit(0)
    }

    /// Like a Go panic; the runners are left behind, orphaned.
    func crash() -> Never {
        Console.err(
            "panic: FAKE_CRASH_AFTER: the server crashes with exit code \(knobs.crashCode)\n\ngoroutine 1 [running]:\nmain.main()"
        )
        exit(knobs.crashCode)
    }

    func warn(_ message: String) { Ollama.log("WARN", "fake_engine.go:1", message) }
}
