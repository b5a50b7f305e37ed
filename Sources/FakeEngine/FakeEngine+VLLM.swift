#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

// `vllm serve` as vLLM 0.11 runs it: log the version and arguments, bind the API socket
// before anything slow (vllm/entrypoints/openai/api_server.py: setup_server →
// create_server_socket, "bind the port before the engine is set up", vllm#8204), start
// the EngineCore process, load, then listen and serve. The main thread owns the lifecycle
// (signals, timers, children) through sigtimedwait; NIO's single event loop serves HTTP.

enum VLLM {
    static let version = "0.11.0"
    /// Where the fake "installation" lives in tracebacks.
    static let sitePackages = "/usr/local/lib/python3.12/dist-packages"
    /// How long the EngineCore gets to exit on shutdown before SIGKILL.
    static let engineCoreStopGrace = 5.0
    /// Delay before the unknown-model error, the time a Hugging Face lookup takes.
    static let badModelDelay = 0.1
}

/// vLLM's log line shapes. Since 0.10.2 every line a vLLM process writes, stdout and
/// stderr alike, is prefixed "(APIServer pid=N) " or "(EngineCore_DP0 pid=N) ".
struct VLLMLog: Sendable {
    let apiPrefix: String

    init(pid: pid_t) { apiPrefix = "(APIServer pid=\(pid)) " }

    /// vLLM's own logger writes to stdout: "INFO 11-25 10:00:00 [api_server.py:1839] ...".
    func info(_ location: String, _ message: String) {
        Console.out(apiPrefix + "INFO \(Clock.vllmStamp()) [\(location)] \(message)")
    }
    func warning(_ location: String, _ message: String) {
        Console.out(apiPrefix + "WARNING \(Clock.vllmStamp()) [\(location)] \(message)")
    }
    func error(_ location: String, _ message: String) {
        Console.out(apiPrefix + "ERROR \(Clock.vllmStamp()) [\(location)] \(message)")
    }
    /// A line from the EngineCore process (the parent prints it on the child's behalf).
    func engineCore(_ pid: pid_t?, _ location: String, _ message: String) {
        Console.out("(EngineCore_DP0 pid=\(pid ?? 0)) INFO \(Clock.vllmStamp()) [\(location)] \(message)")
    }
    /// Uvicorn's server logger goes to stderr: "INFO:     Application startup complete."
    func uvicorn(_ message: String) {
        Console.err(apiPrefix + "INFO:     " + message)
    }
    /// Uvicorn's access log goes to stdout.
    func access(_ message: String) {
        Console.out(apiPrefix + "INFO:     " + message)
    }
    /// A Python traceback on stderr, one prefixed write per line.
    func traceback(_ lines: [String]) {
        for line in lines { Console.err(apiPrefix + line) }
    }
}

/// The API server socket, bound at start and listened on only when loading is done.
enum APISocket {
    struct Failure: Error {
        var pythonException: String
        /// The errno behind it (0 for a name resolution failure); Ollama mode words it its own way.
        var code: Int32 = 0
    }

    /// Binds like vLLM's create_server_socket: AF_INET6 for an IPv6 literal, else AF_INET;
    /// SO_REUSEADDR; no listen(), so connections are refused until loading is done.
    /// SO_REUSEPORT is left off as current vLLM does for a single API server
    /// (`setup_server(args, reuse_port=num_api_servers > 1)`; early 0.1x releases set it
    /// always), so a second engine on a taken port fails with Errno 98.
    static func bind(host: String?, port: Int) -> Result<Int32, Failure> {
        let hostText = host ?? ""
        var probe = in6_addr()
        let family = inet_pton(AF_INET6, hostText, &probe) == 1 ? AF_INET6 : AF_INET

        var storage = sockaddr_storage()
        var length: socklen_t = 0
        if hostText.isEmpty {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = INADDR_ANY
            withUnsafeBytes(of: address) { bytes in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            var hints = addrinfo()
            hints.ai_family = family
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var results: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(hostText, String(port), &hints, &results)
            guard status == 0, let first = results, let address = first.pointee.ai_addr else {
                let message = String(cString: gai_strerror(status))
                return .failure(Failure(pythonException: "socket.gaierror: [Errno \(status)] \(message)"))
            }
            defer { freeaddrinfo(results) }
            length = first.pointee.ai_addrlen
            withUnsafeMutableBytes(of: &storage) { target in
                target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
            }
        }

        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(osError(errno)) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            return .failure(osError(code))
        }
        return .success(fd)
    }

    /// Python's exception class for an errno, as socket.bind raises it.
    static func osError(_ code: Int32) -> Failure {
        let name: String
        switch code {
        case EACCES, EPERM: name = "PermissionError"
        default: name = "OSError"
        }
        return Failure(pythonException: "\(name): [Errno \(code)] \(String(cString: strerror(code)))", code: code)
    }
}

/// One `vllm serve` process.
final class VLLMServer {
    let options: VLLMServeOptions
    let knobs: FaultKnobs
    let pid = getpid()
    let log: VLLMLog
    let state: VLLMServerState

    private var engineCorePID: pid_t?
    private var helperPID: pid_t?
    private var socketFD: Int32 = -1
    private var group: MultiThreadedEventLoopGroup?
    private var serverChannel: Channel?

    init(options: VLLMServeOptions, knobs: FaultKnobs) {
        self.options = options
        self.knobs = knobs
        self.log = VLLMLog(pid: getpid())
        self.state = VLLMServerState(options: options, log: log)
    }

    /// The address vLLM prints: "http://0.0.0.0:8000", "http://[::1]:8000".
    var listenAddress: String {
        let host = options.host.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(options.port)"
    }

    func run() -> Never {
        // Before any thread or child exists: the signals we wait for stay blocked everywhere
        // except in the main thread's sigtimedwait.
        ProcessControl.blockAwaitedSignals()
        let startedAt = Clock.now()

        Console.out("INFO \(Clock.vllmStamp()) [__init__.py:216] Automatically detected platform cuda.")
        log.info("api_server.py:1839", "vLLM API server version \(VLLM.version)")
        let arguments = options.nonDefaultArgs.map { "'\($0.key)': \($0.pythonValue)" }.joined(separator: ", ")
        log.info("utils.py:233", "non-default args: {\(arguments)}")

        switch APISocket.bind(host: options.host, port: options.port) {
        case .success(let fd):
            socketFD = fd
        case .failure(let failure):
            log.traceback(VLLMTracebacks.bindFailure(failure))
            exit(1)
        }

        if knobs.escapeHelper { helperPID = ProcessControl.spawnSelf(.escapedHelper) }

        if let reason = knobs.exitAtStart {
            writePIDFile()
            sleepSeconds(VLLM.badModelDelay)
            if reason == "bad-model" {
                log.traceback(VLLMTracebacks.unknownModel(options.model))
            } else {
                log.traceback([reason])
            }
            exit(1)
        }

        log.info("model.py:547", "Resolved architecture: \(Self.architecture(for: options.model))")
        log.info("model.py:1510", "Using max model len \(options.effectiveMaxModelLen)")
        log.info("scheduler.py:205", "Chunked prefill is enabled with max_num_batched_tokens=8192.")

        if !knobs.noEngineCore {
            engineCorePID = ProcessControl.spawnSelf(.engineCore, inheritedFD: knobs.engineCoreHoldsPort ? socketFD : nil)
        }
        writePIDFile()
        log.engineCore(engineCorePID, "core.py:644", "Waiting for init message from front-end.")
        log.engineCore(
            engineCorePID, "core.py:77",
            "Initializing a V1 LLM engine (v\(VLLM.version)) with config: model='\(options.model)', "
                + "tokenizer='\(options.model)', dtype=torch.bfloat16, max_seq_len=\(options.effectiveMaxModelLen), "
                + "tensor_parallel_size=1, served_model_name=\(options.primaryServedName)")
        log.engineCore(engineCorePID, "gpu_model_runner.py:2602", "Starting to load model \(options.model)...")

        lifecycle(loadDeadline: startedAt + knobs.loadSeconds, startedAt: startedAt)
    }

    // MARK: - Lifecycle loop

    private enum Phase {
        case loading
        case serving
    }

    private func lifecycle(loadDeadline: Double, startedAt: Double) -> Never {
        var phase = Phase.loading
        var crashAt: Double?
        var hangAt: Double?

        while true {
            let deadline: Double? =
                switch phase {
                case .loading: loadDeadline
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
            case .serving:
                if let due = hangAt, now >= due {
                    hangAt = nil
                    state.hung.store(true, ordering: .releasing)
                    log.warning("fake_engine.py:1", "FAKE_HANG_AFTER: from now on no request gets an answer")
                }
                if let due = crashAt, now >= due {
                    crash()
                }
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
            var timeout = timespec(
                tv_sec: Int(remaining),
                tv_nsec: Int((remaining - Double(Int(remaining))) * 1e9))
            result = sigtimedwait(&set, &info, &timeout)
        } else {
            result = sigwaitinfo(&set, &info)
        }
        return result > 0 ? result : nil
    }

    private func handle(signal: Int32, phase: Phase) {
        switch signal {
        case SIGCHLD:
            reapChildren()
        case SIGTERM, SIGINT:
            let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
            if knobs.ignoreSigterm {
                log.warning("fake_engine.py:1", "Received \(name); ignoring it (FAKE_IGNORE_SIGTERM=1)")
                return
            }
            shutDown(serving: phase == .serving)
        default:
            break
        }
    }

    private func reapChildren() {
        var status: Int32 = 0
        while true {
            let reaped = waitpid(-1, &status, WNOHANG)
            guard reaped > 0 else { return }
            if reaped == engineCorePID {
                engineCorePID = nil
                state.engineDead.store(true, ordering: .releasing)
                log.error(
                    "core_client.py:564",
                    "Engine core proc EngineCore_DP0 died unexpectedly, shutting down client.")
            } else if reaped == helperPID {
                helperPID = nil
            }
        }
    }

    private func finishLoading(startedAt: Double) {
        let elapsed = max(Clock.now() - startedAt, 0.01)
        let format = { (value: Double) in String(Double(Int(value * 100)) / 100) }
        log.engineCore(engineCorePID, "default_loader.py:267", "Loading weights took \(format(elapsed * 0.6)) seconds")
        log.engineCore(
            engineCorePID, "gpu_model_runner.py:2653",
            "Model loading took 2.3185 GiB and \(format(elapsed * 0.7)) seconds")
        log.engineCore(engineCorePID, "kv_cache_utils.py:1087", "GPU KV cache size: 425,424 tokens")
        log.engineCore(
            engineCorePID, "core.py:210",
            "init engine (profile, create kv cache, warmup model) took \(format(elapsed * 0.9)) seconds")
        log.info("api_server.py:1634", "Supported_tasks: ['generate']")
        log.info("api_server.py:1912", "Starting vLLM API server 0 on \(listenAddress)")
        log.info("launcher.py:34", "Available routes are:")
        for route in VLLMRoutes.table {
            log.info("launcher.py:42", "Route: \(route.path), Methods: \(route.methods.joined(separator: ", "))")
        }
        log.uvicorn("Started server process [\(pid)]")
        log.uvicorn("Waiting for application startup.")

        // One event loop thread: 100 of these run side by side in benchmarks.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        let state = self.state
        do {
            serverChannel = try FakeHTTPServer.serve(on: socketFD, group: group) { VLLMHTTPHandler(state: state) }
        } catch {
            log.traceback(entryFramesForListenFailure(error))
            stopEngineCore()
            exit(1)
        }
        log.uvicorn("Application startup complete.")
    }

    private func entryFramesForListenFailure(_ error: Error) -> [String] {
        VLLMTracebacks.entryFrames + ["OSError: \(error)"]
    }

    // MARK: - Exits

    /// SIGTERM/SIGINT: uvicorn's graceful shutdown, then the engine, then exit 0.
    private func shutDown(serving: Bool) -> Never {
        if serving {
            log.uvicorn("Shutting down")
            try? serverChannel?.close().wait()
            log.uvicorn("Waiting for application shutdown.")
            log.uvicorn("Application shutdown complete.")
        } else {
            log.info("api_server.py:1887", "Received termination signal during startup; shutting down.")
        }
        stopEngineCore()
        if serving { log.uvicorn("Finished server process [\(pid)]") }
        exit(0)
    }

    /// FAKE_CRASH_AFTER: die by signal (nothing cleaned up: the EngineCore is orphaned), or
    /// exit with a traceback and a code after Python's exit handlers stopped the EngineCore.
    private func crash() -> Never {
        if let signal = knobs.crashSignal {
            log.error("fake_engine.py:1", "FAKE_CRASH_AFTER: killing the API server with signal \(signal)")
            Faults.killSelf(with: signal)
        }
        log.error("fake_engine.py:1", "FAKE_CRASH_AFTER: API server crashing with exit code \(knobs.crashCode)")
        log.traceback(VLLMTracebacks.crash())
        stopEngineCore()
        exit(knobs.crashCode)
    }

    private func stopEngineCore() {
        guard let child = engineCorePID else { return }
        engineCorePID = nil
        ProcessControl.terminate(child, grace: VLLM.engineCoreStopGrace)
    }

    private func writePIDFile() {
        guard let path = knobs.pidFile else { return }
        Faults.writePIDFile(path, main: pid, engineCore: engineCorePID, helper: helperPID)
    }

    private func sleepSeconds(_ seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }

    /// The architecture vLLM would read from the model's config.json, guessed from its id.
    static func architecture(for model: String) -> String {
        let id = model.lowercased()
        let known: [(String, String)] = [
            ("qwen3", "Qwen3ForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("qwen", "Qwen2ForCausalLM"),
            ("mistral", "MistralForCausalLM"), ("mixtral", "MixtralForCausalLM"), ("gemma-3", "Gemma3ForCausalLM"),
            ("gemma", "GemmaForCausalLM"), ("phi", "Phi3ForCausalLM"), ("opt", "OPTForCausalLM"),
            ("gpt-oss", "GptOssForCausalLM"), ("deepseek", "DeepseekV3ForCausalLM"),
        ]
        return known.first { id.contains($0.0) }?.1 ?? "LlamaForCausalLM"
    }
}
