import AgentronClient
import AgentronConfig
import AgentronCore
import AgentronEngines
import ArgumentParser
import Glibc

struct ServerUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a server from a Hugging Face model id or a profile, and wait until it answers.",
        discussion: """
            TARGET is a profile name (see `agentron profiles list`), a profile file path, or a
            model id with --engine:

              agentron up meta-llama/Llama-3.2-1B-Instruct --engine vllm
              agentron up qwen2.5-1.5b-instruct --port 8001
              agentron up ./my-server.yaml

            Flags override the profile's fields. `up` waits until the engine's health check
            passes and the model is listed, then prints the endpoint and the model name to
            use. `up` of a server already up with the same settings returns at once.
            """
    )

    @Argument(
        help: "A profile name, a profile file, or a model id (with --engine); several start in parallel.",
        completion: Completion.profiles)
    var targets: [String] = []

    /// The one target of a single `up`.
    var target: String { targets.first ?? "" }

    @Option(help: "Engine: vllm, ollama, tgi or command. Required for a model id.")
    var engine: String?

    @Option(help: "Server name (default: derived from the model id, e.g. llama-3.2-1b-instruct).")
    var name: String?

    @Option(help: "TCP port, or auto to pick a free one.", transform: Parse.port)
    var port: PortSpec?

    @Option(help: "Address the engine binds (default 127.0.0.1).")
    var host: String?

    @Option(help: "GPU indices the engine may use, e.g. 0,1.", transform: Parse.gpus)
    var gpus: [Int]?

    @Option(
        name: .customLong("arg"), parsing: .unconditionalSingleValue,
        help: "An extra engine argument; repeat for several (--arg=--max-model-len --arg=4096).")
    var args: [String] = []

    @Option(
        name: .customLong("env"),
        help:
            "KEY=VALUE for the engine's environment, or KEY alone to pass your own value (kept out of argv and shell history); repeat for several."
    )
    var envPairs: [String] = []

    @Option(help: "How long the engine may take to become ready (e.g. 30m).", transform: Parse.timeSpan)
    var startupTimeout: TimeSpan?

    @Option(help: "Grace between SIGTERM and SIGKILL on stop (e.g. 90s).", transform: Parse.timeSpan)
    var stopTimeout: TimeSpan?

    @Option(
        help: "Stop the server after this long without a request through the gateway (e.g. 10m); see docs/gateway.md.",
        transform: Parse.timeSpan)
    var ttl: TimeSpan?

    @Flag(help: "Do not write this server into the shared provider config.")
    var noRegister = false

    @Option(
        help:
            "ollama, tgi: when to pull the model or image: missing (default: only what is not here), always, or never.")
    var pullPolicy: String?

    @Flag(help: "Same as --pull-policy always (kept for one release).")
    var pull = false

    @Flag(
        help:
            "ollama: use the Ollama already answering on --port (e.g. the system service) instead of starting one; agentron never stops it."
    )
    var adopt = false

    @Flag(help: "Return once the daemon has accepted the server; do not wait for ready.")
    var detach = false

    @Flag(help: "Print the resulting server as JSON.")
    var json = false

    func validate() throws {
        if pull || pullPolicy != nil, let engine,
            EngineKind(rawValue: engine).map({ $0.driver.profileKeys[.pull] == nil }) ?? true
        {
            throw ValidationError(
                "--pull and --pull-policy are for \(Self.engines(taking: .pull)); \(engine) fetches its own model")
        }
        if pull && pullPolicy != nil { throw ValidationError("give --pull-policy or --pull, not both") }
        if let pullPolicy, PullPolicy(rawValue: pullPolicy) == nil {
            throw ValidationError(
                "unknown pull policy \"\(pullPolicy)\"; choose one of: \(PullPolicy.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let engine, EngineKind(rawValue: engine) == nil {
            throw ValidationError(
                "unknown engine \"\(engine)\"; choose one of: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let name, !Profile.isValidName(name) {
            throw ValidationError(
                "invalid --name \"\(name)\"; use letters, digits, '-', '_' or '.', at most 64 characters")
        }
        for pair in envPairs { _ = try Parse.envPair(pair, environment: ProcessEnvironment.current) }
        try validateTargets()
    }

    func run() async throws {
        let context = CLIContext()
        if targets.count > 1 { return try await runMany(context) }
        let profile: Profile
        do {
            profile = try resolveProfile(context, target: target)
        } catch let error as ProfileError {
            throw fail(error)
        }

        let clock = ContinuousClock()
        let started = clock.now
        let client = context.client
        var info: ServerInfo
        // Straight to the start: a daemon that answers needs no separate check first (one
        // round trip, not two); only when none runs is it started and asked again.
        do {
            info = try await client.start(profile)
        } catch .daemonNotRunning {
            try await Self.ensureDaemon(context)
            do { info = try await client.start(profile) } catch { throw fail(error) }
        } catch {
            throw fail(error)
        }
        if detach {
            if json {
                Output.json(info)
            } else {
                print(
                    "\(info.name): \(info.state.rawValue) (accepted; follow it with `agentron ps` or `agentron logs \(info.name) -f`)"
                )
            }
            return
        }

        var progress = UpProgress(name: profile.name, interactive: Output.stderrIsTTY && !json)
        while !info.state.isSettled {
            progress.update(info, elapsed: started.duration(to: clock.now))
            do {
                info = try await client.wait(profile.name, seconds: progress.pollSeconds)
            } catch {
                progress.finish()
                throw fail(error)
            }
        }
        progress.finish()
        let elapsed = started.duration(to: clock.now)

        switch info.state {
        case .ready:
            if json {
                Output.json(info)
            } else {
                let endpoint = info.endpoint ?? "?"
                print("\(info.name) is ready (\(info.engine.rawValue), \(Format.elapsed(elapsed)))")
                print("  endpoint  \(endpoint)")
                print("  openai    \(endpoint)/v1")
                print("  model     \(info.servedModel)")
            }
        case .failed, .stopped:
            if json { Output.json(info) }
            var message =
                "server \"\(info.name)\" \(info.state == .failed ? "failed to start" : "stopped before it was ready")"
            if let reason = info.reason { message += ": \(reason)" }
            Output.error(message)
            if let tail = info.logTail, !tail.isEmpty {
                Output.note("last log lines (agentron logs \(info.name)):")
                for line in tail { Output.note("  \(line)") }
            }
            throw ExitCode(ExitStatus.startFailed)
        default:
            throw fail("server \"\(info.name)\" is \(info.state.rawValue)")
        }
    }

    /// A profile (by name or file) with flags on top, or a profile built from a model id.
    func resolveProfile(_ context: CLIContext, target: String) throws -> Profile {
        let catalog = context.catalog
        var profile: Profile
        let isProfileFile =
            target.hasSuffix(".yaml") || target.hasSuffix(".yml") || (engine == nil && Self.isRegularFile(target))
        // A file is read alone; a name is looked up in one pass over the search path (each
        // profile file parsed once: the catalog is most of what `up` costs, issue #14).
        let known = isProfileFile ? nil : catalog.entries().first { $0.name == target }
        if isProfileFile {
            profile = try catalog.resolve(target)
        } else if let known, engine == nil {
            profile = try known.result.get()
        } else if let engineName = engine, let kind = EngineKind(rawValue: engineName) {
            // A local model directory is passed absolute: the engine runs in the daemon's
            // working directory, not this shell's.
            let model = Self.isDirectory(target) ? Self.absolutePath(target) : target
            profile = Profile(name: Profile.derivedName(fromModel: model), engine: kind, model: model, source: "flags")
        } else {
            // Neither a profile nor an engine: say both ways out.
            var message = "no profile named \"\(target)\""
            let close = catalog.entries().map(\.name).filter {
                $0.contains(target.lowercased()) || target.lowercased().contains($0)
            }
            if !close.isEmpty { message += " (close: \(close.joined(separator: ", ")))" }
            message +=
                "; to run a model id, add --engine, e.g. `agentron up \(target) --engine vllm`; to see profiles, `agentron profiles list`"
            throw ProfileError(file: "", message: message)
        }
        if let engine, let kind = EngineKind(rawValue: engine) { profile.engine = kind }
        if let name { profile.name = name }
        if let port { profile.port = port }
        if let host { profile.host = host }
        if let gpus { profile.gpus = gpus }
        if !args.isEmpty { profile.args += args }
        let environment = ProcessEnvironment.current
        for pair in envPairs {
            let (key, value) = try Parse.envPair(pair, environment: environment)
            profile.env[key] = value
        }
        if let startupTimeout { profile.startupTimeout = startupTimeout }
        if let ttl { profile.ttl = ttl }
        if let stopTimeout { profile.stopTimeout = stopTimeout }
        if noRegister { profile.register = false }
        if pull { profile.pull = .always }
        if let pullPolicy { profile.pull = PullPolicy(rawValue: pullPolicy) }
        if adopt {
            let driver = profile.engine.driver
            guard driver.profileKeys[.adopt] != nil else {
                throw ProfileError(file: "", message: "--adopt is for \(Self.engines(taking: .adopt))")
            }
            guard case .fixed = profile.port else {
                let port =
                    driver.defaultPort.map { "\($0) (\(driver.displayName)'s default) or its port" } ?? "with its port"
                throw ProfileError(
                    file: "",
                    message: "--adopt needs the port the running \(driver.displayName) answers on: add --port \(port)")
            }
            profile.adopt = true
        }
        return CallerEngine.apply(to: profile, environment: environment)
    }
}

extension ServerUp {
    /// `the ollama engine`, `the ollama and tgi engines`: the engines whose drivers take `key`.
    static func engines(taking key: EngineProfileKey) -> String {
        let names = Engines.drivers(accepting: key).map(\.kind.rawValue)
        return "the \(names.joined(separator: " and ")) engine\(names.count == 1 ? "" : "s")"
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func absolutePath(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        var base = String(cString: cwd)
        var rest = Substring(path)
        while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if !base.hasSuffix("/") { base += "/" }
        return rest.isEmpty || rest == "." ? String(base.dropLast()) : base + rest
    }
}

/// What `up` shows while it waits: on a TTY one line redrawn in place (state, elapsed time,
/// the engine's latest log line); otherwise a plain line per state change and a reminder
/// every half minute, so logs of scripted runs stay readable.
struct UpProgress {
    let name: String
    let interactive: Bool
    private var lastState: ServerState?
    private var lastPlainNote: Duration = .zero
    private var frame = 0
    private var drewLine = false

    /// How often the screen is refreshed: the wait returns early when the state settles,
    /// so this only bounds how stale the elapsed time and log line can be.
    var pollSeconds: Double { interactive ? 0.25 : 5 }
    static let plainReminder: Duration = .seconds(30)
    static let spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    init(name: String, interactive: Bool) {
        self.name = name
        self.interactive = interactive
    }

    mutating func update(_ info: ServerInfo, elapsed: Duration) {
        if interactive {
            frame += 1
            var line =
                "\(Self.spinner[frame % Self.spinner.count]) \(name): \(info.state.rawValue) \(Format.elapsed(elapsed))"
            if let progress = info.progress {
                line += "  " + Self.describe(progress, bar: true)
            } else if let log = info.lastLogLine ?? info.reason {
                line += "  \(log)"
            }
            let width = terminalWidth()
            if line.count > width - 1 { line = String(line.prefix(width - 2)) + "…" }
            Output.writeStderr("\r\u{1B}[2K" + line)
            drewLine = true
        } else if info.state != lastState || elapsed - lastPlainNote >= Self.plainReminder {
            var line = "\(name): \(info.state.rawValue) (\(Format.elapsed(elapsed)))"
            if let reason = info.reason {
                line += ": \(reason)"
            } else if let progress = info.progress {
                line += ": " + Self.describe(progress, bar: false)
            } else if let log = info.lastLogLine {
                line += ": \(log)"
            }
            Output.note(line)
            lastPlainNote = elapsed
        }
        lastState = info.state
    }

    /// `downloading 2bada8a7 [#####-----] 48% 1.2/2.5 GB`, or just the phase when sizes are unknown.
    static func describe(_ progress: EngineProgress, bar: Bool) -> String {
        guard let total = progress.total, total > 0, let completed = progress.completed else { return progress.phase }
        let fraction = min(1, max(0, Double(completed) / Double(total)))
        let percent = Int(fraction * 100)
        var text = progress.phase
        if bar {
            let width = 20
            let filled = Int(fraction * Double(width))
            text += " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        }
        return text + " \(percent)% \(Format.bytes(completed))/\(Format.bytes(total))"
    }

    mutating func finish() {
        if drewLine { Output.writeStderr("\r\u{1B}[2K") }
        drewLine = false
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 { return Int(size.ws_col) }
        return 80
    }
}
