import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

// `vllm serve` as vLLM 0.11 runs it: log the version and arguments, bind the API socket
// before anything slow (api_server.py: setup_server → create_server_socket, "bind the port
// before the engine is set up", vllm#8204), start the EngineCore process, load, then listen
// and serve; on SIGTERM/SIGINT stop the EngineCore and exit 0.

final class VLLMServer: Engine {
    static let sitePackages = "/usr/local/lib/python3.12/dist-packages"
    /// Before the unknown-model error: the time a Hugging Face lookup takes.
    static let badModelDelay = 0.1

    let options: VLLMOptions
    let knobs: Knobs
    let service: HTTPService
    /// Since 0.10.2 every line a vLLM process writes, stdout and stderr alike, carries it.
    let prefix: String
    private var socketFD: Int32 = -1
    private var engineCore: pid_t?
    private var helper: pid_t?
    private var channel: Channel?
    /// The EngineCore died: /health 503, generation 500 (vLLM's EngineDeadError).
    private let engineDead: Flag

    init(options: VLLMOptions, knobs: Knobs) {
        let (prefix, engineDead) = ("(APIServer pid=\(getpid())) ", Flag())
        (self.options, self.knobs, self.prefix, self.engineDead) = (options, knobs, prefix, engineDead)
        service = HTTPService(
            maximumBodyBytes: 32 << 20, tooLarge: .json(.payloadTooLarge, ["detail": "Request body too large"]),
            headers: { [("date", Clock.httpDate()), ("server", "uvicorn")] },
            log: { request, status, peer, _ in
                guard options.accessLog else { return }
                let client = peer.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-"
                let line =
                    "\(request.method.rawValue) \(request.head.uri) HTTP/\(request.head.version.major).\(request.head.version.minor)"
                // Uvicorn's access log goes to stdout.
                Console.out(prefix + "INFO:     \(client) - \"\(line)\" \(status.code) \(status.reasonPhrase)")
            },
            route: { [tokenSeconds = knobs.tokenSeconds] in
                VLLMRoutes.reply($0, options: options, engineDead: engineDead.isSet, tokenSeconds: tokenSeconds)
            })
    }

    /// vLLM's own logger writes to stdout: "INFO 11-25 10:00:00 [api_server.py:1839] ...".
    func log(_ level: String, _ location: String, _ message: String, engineCore: Bool = false) {
        let source = engineCore ? "(EngineCore_DP0 pid=\(self.engineCore ?? 0)) " : prefix
        Console.out(source + "\(level) \(Clock.wall("%m-%d %H:%M:%S", local: true)) [\(location)] \(message)")
    }

    /// Uvicorn's server logger writes to stderr.
    func uvicorn(_ message: String) { Console.err(prefix + "INFO:     " + message) }

    /// A Python traceback on stderr, one prefixed write per line.
    func traceback(_ lines: [String]) { for line in lines { Console.err(prefix + line) } }

    func run() -> Never {
        let startedAt = Clock.now()
        log("INFO", "api_server.py:1839", "vLLM API server version \(VLLMArguments.version)")
        log("INFO", "utils.py:233", "non-default args: {\(options.logged.joined(separator: ", "))}")
        switch Socket.bind(host: options.host, port: options.port) {
        case .success(let fd):
            socketFD = fd
        case .failure(let failure):
            traceback(
                Self.frames([
                    "entrypoints/openai/api_server.py\", line 1808, in create_server_socket", "    sock.bind(addr)",
                ]) + [Self.exception(failure)])
            exit(1)
        }
        if knobs.escapeHelper { helper = Children.spawn(ChildRole.escapedHelper.argv) }
        if let reason = knobs.exitAtStart {
            knobs.writePIDFile(child: nil, helper: helper)
            Clock.sleep(Self.badModelDelay)
            traceback(reason == "bad-model" ? Self.unknownModel(options.model) : [reason])
            exit(1)
        }
        log("INFO", "model.py:1510", "Using max model len \(options.maxModelLen)")
        if !knobs.noEngineCore { engineCore = Children.spawn(ChildRole.engineCore.argv) }
        knobs.writePIDFile(child: engineCore, helper: helper)
        log(
            "INFO", "core.py:77",
            "Initializing a V1 LLM engine (v\(VLLMArguments.version)) with config: model='\(options.model)', "
                + "max_seq_len=\(options.maxModelLen), served_model_name=\(options.servedNames[0])", engineCore: true)
        log("INFO", "gpu_model_runner.py:2602", "Starting to load model \(options.model)...", engineCore: true)
        runLifecycle(startedAt: startedAt, loadSeconds: knobs.loadSeconds)
    }

    func startServing() {
        log(
            "INFO", "core.py:210",
            "init engine (profile, create kv cache, warmup model) took \(knobs.loadSeconds) seconds", engineCore: true)
        let host = options.host.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
        log(
            "INFO", "api_server.py:1912",
            "Starting vLLM API server 0 on http://\(host.contains(":") ? "[\(host)]" : host):\(options.port)")
        log("INFO", "launcher.py:34", "Available routes are:")
        for (path, methods) in VLLMRoutes.table {
            log("INFO", "launcher.py:42", "Route: \(path), Methods: \(methods.joined(separator: ", "))")
        }
        uvicorn("Started server process [\(getpid())]")
        uvicorn("Waiting for application startup.")
        do {
            channel = try service.serve(on: socketFD)
        } catch {
            // Another program listened on the bound port first (SO_REUSEADDR lets it).
            traceback(Self.frames([]) + ["OSError: \(error)"])
            stopEngineCore()
            exit(1)
        }
        uvicorn("Application startup complete.")
    }

    func childExited(_ pid: pid_t) {
        if pid == engineCore {
            engineCore = nil
            engineDead.set()
            log(
                "ERROR", "core_client.py:564",
                "Engine core proc EngineCore_DP0 died unexpectedly, shutting down client.")
        }
    }

    /// Uvicorn's graceful shutdown, then the engine, then exit 0.
    func shutDown(serving: Bool) -> Never {
        if serving {
            uvicorn("Shutting down")
            try? channel?.close().wait()
            uvicorn("Waiting for application shutdown.")
            uvicorn("Application shutdown complete.")
        }
        stopEngineCore()
        if serving { uvicorn("Finished server process [\(getpid())]") }
        exit(0)
    }

    /// A traceback and the exit code, after Python's exit handlers stopped the EngineCore.
    func crash() -> Never {
        log("ERROR", "fake_engine.py:1", "FAKE_CRASH_AFTER: API server crashing with exit code \(knobs.crashCode)")
        traceback(
            Self.frames([
                "v1/engine/core_client.py\", line 895, in get_output_async",
                "    raise self._format_exception(outputs) from None",
            ])
                + ["RuntimeError: CUDA error: an illegal memory access was encountered"])
        stopEngineCore()
        exit(knobs.crashCode)
    }

    func warn(_ message: String) { log("WARNING", "fake_engine.py:1", message) }

    private func stopEngineCore() {
        guard let child = engineCore else { return }
        engineCore = nil
        Children.terminate(child)
    }

    // MARK: Tracebacks

    /// From `vllm` down to a frame in vllm/entrypoints/`innermost[0]`, then its source line.
    static func frames(_ innermost: [String]) -> [String] {
        [
            "Traceback (most recent call last):",
            "  File \"/usr/local/bin/vllm\", line 10, in <module>",
            "    sys.exit(main())",
            "  File \"\(sitePackages)/vllm/entrypoints/cli/serve.py\", line 57, in cmd",
            "    uvloop.run(run_server(args))",
        ] + (innermost.isEmpty ? [] : ["  File \"\(sitePackages)/vllm/\(innermost[0])", innermost[1]])
    }

    /// Python's exception for a failed bind: "OSError: [Errno 98] Address already in use".
    static func exception(_ failure: BindFailure) -> String {
        if failure.resolverMessage != nil { return "socket.gaierror: [Errno \(failure.code)] \(failure.message)" }
        let name = failure.code == EACCES || failure.code == EPERM ? "PermissionError" : "OSError"
        return "\(name): [Errno \(failure.code)] \(failure.message)"
    }

    /// An unknown Hugging Face model id: the hub's 401, then transformers' OSError.
    static func unknownModel(_ model: String) -> [String] {
        [
            "huggingface_hub.errors.RepositoryNotFoundError: 401 Client Error. (Request ID: Root=1-6745f0c1-2b1e3f4a5c6d7e8f90a1b2c3)",
            "Repository Not Found for url: https://huggingface.co/\(model)/resolve/main/config.json.",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
        ]
            + frames([
                "transformers_utils/config.py\", line 501, in get_config",
                "    config_dict, _ = PretrainedConfig.get_config_dict(",
            ]) + [
                "OSError: \(model) is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'"
            ]
    }
}
