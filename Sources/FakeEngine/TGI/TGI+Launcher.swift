import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

// `text-generation-launcher` as TGI 3.x's Docker image runs it (the image's ENTRYPOINT):
// clap-style flags with env fallbacks, tracing-subscriber lines on stdout, the weights
// "downloaded" into the Hugging Face cache, N shards that load, then the router (the
// "webserver"), which binds its port only once warm-up is done, so connections are
// refused while loading. On SIGTERM or SIGINT it stops the webserver, then the shards, and
// exits 0; a failure ends with Rust's `Error: <LauncherError>` on stderr and exit 1. The
// shards and the router are only log lines here.

struct TGIOptions: Sendable {
    var modelID: String
    /// As given (flag, HOSTNAME, default); the router binds it only if it is an IP literal.
    var hostname = "0.0.0.0"
    /// The image sets PORT=80; the launcher's own default (3000) never shows in a container.
    var port = 80
    var apiKey: String?
    var shards = 1
    var maxTotalTokens = 4096
    var maxInputTokens = 4095
    /// `--huggingface-hub-cache` or HUGGINGFACE_HUB_CACHE.
    var hubCache: String?
    /// Every flag given, for the `Args { ... }` line.
    var given: [(String, String)] = []
}

enum TGI {
    static let version = "3.3.6"
    static let sha = "9a1b3c5d7e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b"
    static let usage = "Usage: text-generation-launcher [OPTIONS] --model-id <MODEL_ID>"
    /// clap `bool` flags: they take no value. Any other flag takes the next token unless it
    /// starts with "--".
    static let valueless: Set<String> = [
        "trust-remote-code", "disable-custom-kernels", "json-output", "ngrok", "env", "disable-grammar-support",
        "enable-prefill-logprobs", "disable-usage-stats", "disable-crash-reports",
    ]
    /// Before a download failure: the time the hub lookup takes.
    static let downloadFailureDelay = 0.1

    static func main(arguments: [String], environment: (String) -> String?) -> Never {
        let options = parse(arguments, environment)
        let knobs = Knobs.fromEnvironment(environment)
        // huggingface_hub's resolution: HF_HOME, else ~/.cache/huggingface (the image sets
        // HF_HOME=/data); the hub cache is HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (which the
        // launcher sets from --huggingface-hub-cache), else $HF_HOME/hub.
        func nonEmpty(_ name: String) -> String? { environment(name).flatMap { $0.isEmpty ? nil : $0 } }
        let hfHome = nonEmpty("HF_HOME") ?? (nonEmpty("HOME") ?? "/root") + "/.cache/huggingface"
        TGIServer(
            options: options, knobs: knobs, hubCache: nonEmpty("HF_HUB_CACHE") ?? options.hubCache ?? hfHome + "/hub"
        ).run()
    }

    /// Parses everything after argv[0]; `--version`, `--help` and usage errors end the
    /// process as clap does (an error on stderr, exit 2).
    static func parse(_ arguments: [String], _ environment: (String) -> String?) -> TGIOptions {
        func usageError(_ message: String) -> Never {
            Console.err("error: \(message)\n\nFor more information, try '--help'.")
            exit(2)
        }
        var given: [String: String] = [:]
        var order: [String] = []
        var rest = arguments[...]
        while let token = rest.popFirst() {
            if token == "-h" || token == "--help" { Console.finish(usage, code: 0) }
            if token == "-V" || token == "--version" { Console.finish("text-generation-launcher \(version)", code: 0) }
            guard token.hasPrefix("-"), token != "-" else {
                usageError("unexpected argument '\(token)' found\n\n\(usage)")
            }
            let parts = token.split(separator: "=", maxSplits: 1).map(String.init)
            let key = parts[0] == "-p" ? "port" : String(parts[0].drop { $0 == "-" }).replacing("_", with: "-")
            var value = parts.count > 1 ? parts[1] : nil
            if value == nil, !valueless.contains(key), let next = rest.first, !next.hasPrefix("--") {
                value = rest.popFirst()
            }
            if given[key] == nil { order.append(key) }
            given[key] = value ?? "true"
        }
        func lookup(_ key: String, _ variable: String) -> String? {
            given[key] ?? environment(variable).flatMap { $0.isEmpty ? nil : $0 }
        }
        func integer(_ key: String, _ variable: String, maximum: Int = Int.max) -> Int? {
            guard let text = lookup(key, variable) else { return nil }
            guard let number = Int(text), (0...maximum).contains(number) else {
                usageError("invalid value '\(text)' for '--\(key) <\(variable)>': invalid digit found in string")
            }
            return number
        }
        guard let model = lookup("model-id", "MODEL_ID") else {
            usageError("the following required arguments were not provided:\n  --model-id <MODEL_ID>\n\n\(usage)")
        }
        var options = TGIOptions(modelID: model)
        options.hostname = lookup("hostname", "HOSTNAME") ?? options.hostname
        options.port = integer("port", "PORT", maximum: 65535) ?? options.port
        options.apiKey = lookup("api-key", "API_KEY")
        options.shards = max(1, integer("num-shard", "NUM_SHARD") ?? 1)
        options.maxTotalTokens = integer("max-total-tokens", "MAX_TOTAL_TOKENS") ?? options.maxTotalTokens
        options.maxInputTokens = integer("max-input-tokens", "MAX_INPUT_TOKENS") ?? options.maxTotalTokens - 1
        options.hubCache = lookup("huggingface-hub-cache", "HUGGINGFACE_HUB_CACHE")
        options.given = order.filter { $0 != "model-id" }.map { key in
            (key.replacing("-", with: "_"), key == "api-key" ? "<redacted>" : given[key] ?? "")
        }
        return options
    }

    /// tracing-subscriber's default format, which the launcher and the router use:
    /// `2025-11-25T10:00:00.123456Z  INFO download: text_generation_launcher: message rank=0`.
    static func log(
        _ level: String, _ message: String, span: String? = nil, target: String = "text_generation_launcher",
        fields: String = ""
    ) {
        let padded = String(repeating: " ", count: max(0, 5 - level.count)) + level
        let line =
            "\(Clock.wall("%Y-%m-%dT%H:%M:%S", digits: 6))Z \(padded) " + (span.map { $0 + ": " } ?? "") + target + ": "
            + message
        Console.out(fields.isEmpty ? line : line + " " + fields)
    }
}

/// One launcher process.
final class TGIServer: Engine {
    let options: TGIOptions
    let knobs: Knobs
    let hubCache: String
    let service: HTTPService
    private var helper: pid_t?
    private var channel: Channel?

    init(options: TGIOptions, knobs: Knobs, hubCache: String) {
        (self.options, self.knobs, self.hubCache) = (options, knobs, hubCache)
        service = HTTPService(
            maximumBodyBytes: 2_000_000,  // TGI's default --payload-limit
            tooLarge: .full(
                .payloadTooLarge, contentType: "text/plain; charset=utf-8",
                body: "Failed to buffer the request body: length limit exceeded"),
            headers: { [("access-control-allow-origin", "*"), ("date", Clock.httpDate())] }, log: { _, _, _, _ in },
            route: { TGIRoutes.reply($0, options: options) })
    }

    func shard(_ message: String, rank: Int, level: String = "INFO") {
        TGI.log(level, message, span: "shard-manager", fields: "rank=\(rank)")
    }

    func run() -> Never {
        let startedAt = Clock.now()
        let fields = [("model_id", options.modelID)] + options.given
        TGI.log("INFO", "Args { " + fields.map { "\($0.0): \"\($0.1)\"" }.joined(separator: ", ") + " }")
        if options.shards > 1 { TGI.log("INFO", "Sharding model on \(options.shards) processes") }
        if knobs.escapeHelper { helper = Children.spawn(ChildRole.escapedHelper.argv) }
        knobs.writePIDFile(child: nil, helper: helper)
        TGI.log("INFO", "Starting check and download process for \(options.modelID)", span: "download")
        if let reason = knobs.exitAtStart {
            Clock.sleep(TGI.downloadFailureDelay)
            downloadFailed(
                reason != "bad-model"
                    ? reason
                    : [
                        "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-6745f0c1-2b1e3f4a5c6d7e8f90a1b2c3)",
                        "",
                        "Repository Not Found for url: https://huggingface.co/api/models/\(options.modelID)/revision/main.",
                        "Please make sure you specified the correct `repo_id` and `repo_type`.",
                    ].joined(separator: "\n"))
        }
        storeWeights()
        TGI.log("INFO", "Successfully downloaded weights for \(options.modelID)", span: "download")
        for rank in 0..<options.shards { shard("Starting shard", rank: rank) }
        runLifecycle(startedAt: startedAt, loadSeconds: knobs.loadSeconds)
    }

    private func downloadFailed(_ detail: String) -> Never {
        TGI.log("ERROR", "Download encountered an error: \n" + detail, span: "download")
        Console.err("Error: DownloadError")
        exit(1)
    }

    /// The download as huggingface_hub lays it out: `models--<org>--<name>/refs/main` with
    /// the revision, and `snapshots/<revision>/model.safetensors` (a few bytes here). When
    /// it is there, nothing is downloaded. A cache it cannot write fails as the download
    /// does, with Python's PermissionError.
    private func storeWeights() {
        let repository = hubCache + "/models--" + options.modelID.split(separator: "/").joined(separator: "--")
        let weights = repository + "/snapshots/\(TGI.sha)/model.safetensors"
        guard access(weights, F_OK) != 0 else {
            return TGI.log("INFO", "Files are already present on the host. Skipping download.")
        }
        TGI.log("INFO", "Download file: model.safetensors")
        for (path, contents) in [
            (repository + "/refs/main", TGI.sha), (weights, "fake-engine weights for \(options.modelID)\n"),
        ] {
            var failed: String?
            var prefix = ""
            for component in path.split(separator: "/").dropLast() where failed == nil {
                prefix += "/" + component
                if mkdir(prefix, 0o755) != 0, errno != EEXIST { failed = prefix }
            }
            let bytes = Array(contents.utf8)
            let fd = failed == nil ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) : -1
            if failed == nil, fd < 0 || bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) != bytes.count {
                failed = path
            }
            let code = errno
            if fd >= 0 { close(fd) }
            if let failed {
                downloadFailed("PermissionError: [Errno \(code)] \(String(cString: strerror(code))): '\(failed)'")
            }
        }
    }

    func startServing() {
        for rank in 0..<options.shards { shard("Shard ready in \(knobs.loadSeconds)s", rank: rank) }
        TGI.log("INFO", "Starting Webserver")
        let server = "text_generation_router::server"
        TGI.log("INFO", "backends/v3/src/lib.rs:125: Warming up model", target: "text_generation_router_v3")
        var v4 = in_addr()
        var v6 = in6_addr()
        let isAddress =
            inet_pton(AF_INET, options.hostname, &v4) == 1 || inet_pton(AF_INET6, options.hostname, &v6) == 1
        // Docker sets HOSTNAME to the container id, which is no address.
        if !isAddress {
            TGI.log("WARN", "router/src/server.rs:1901: Invalid hostname, defaulting to 0.0.0.0", target: server)
        }
        TGI.log("INFO", "router/src/server.rs:2311: Connected", target: server)
        // The router's TcpListener::bind: SO_REUSEADDR, bind, listen, all at this point.
        switch Socket.bind(host: isAddress ? options.hostname : "0.0.0.0", port: options.port) {
        case .success(let fd):
            do { channel = try service.serve(on: fd) } catch {
                webserverCrashed(code: (error as? IOError)?.errnoCode ?? EINVAL)
            }
        case .failure(let failure):
            webserverCrashed(code: failure.code)
        }
    }

    func childExited(_ pid: pid_t) {}

    /// The launcher stops the webserver, then the shards, and exits 0.
    func shutDown(serving: Bool) -> Never {
        if serving { stopWebserver() }
        stopShards()
        exit(0)
    }

    private func stopWebserver() {
        TGI.log("INFO", "Terminating webserver")
        TGI.log("INFO", "Waiting for webserver to gracefully shutdown")
        try? channel?.close().wait()
        TGI.log("INFO", "webserver terminated")
    }

    private func stopShards() {
        TGI.log("INFO", "Shutting down shards")
        for rank in 0..<options.shards { shard("shard terminated", rank: rank) }
    }

    /// The router panics on a failed bind; the launcher sees its webserver die.
    private func webserverCrashed(code: Int32) -> Never {
        let kind =
            [EADDRINUSE: "AddrInUse", EACCES: "PermissionDenied", EADDRNOTAVAIL: "AddrNotAvailable"][code]
            ?? "Uncategorized"
        Console.err("thread 'main' panicked at router/src/server.rs:2620:67:")
        Console.err(
            "called `Result::unwrap()` on an `Err` value: Os { code: \(code), kind: \(kind), message: \"\(String(cString: strerror(code)))\" }"
        )
        TGI.log("ERROR", "Webserver Crashed")
        stopShards()
        Console.err("Error: WebserverFailed")
        exit(1)
    }

    /// A shard dies (a CUDA error) and takes the launcher down.
    func crash() -> Never {
        shard(
            "Shard complete standard error output:\n\nRuntimeError: CUDA error: an illegal memory access was encountered",
            rank: 0, level: "ERROR")
        TGI.log("ERROR", "Shard 0 crashed")
        stopWebserver()
        stopShards()
        Console.err("Error: ShardFailed")
        exit(knobs.crashCode)
    }

    func warn(_ message: String) { TGI.log("WARN", message, target: "fake_engine") }
}
