import AgentronConfig
import AgentronCore
import AgentronProcess
import Glibc
import Logging
import ServiceLifecycle

/// agentrond: runs in the foreground (systemd runs it so; the CLI starts it in the
/// background when no daemon answers), owns every server, serves the control API.
public enum Daemon {
    public static func main(arguments: [String]) async -> Int32 {
        if arguments.contains("--version") {
            print("agentrond \(agentronVersion)")
            return 0
        }
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage)
            return 0
        }
        let environment = ProcessEnvironment.current
        // Live restore: on SIGTERM leave the engines running for the next daemon to re-adopt
        // (an upgrade, a restart by systemd); without it SIGTERM stops every engine.
        let liveRestore = arguments.contains("--live-restore") || environment["AGENTRON_LIVE_RESTORE"] == "1"
        var gatewayFlag: String?
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--live-restore" { continue }
            if argument == "--gateway" {
                guard let value = rest.popFirst() else {
                    printError("agentrond: --gateway needs a value: host:port, or off")
                    return 2
                }
                gatewayFlag = value
            } else if argument.hasPrefix("--gateway=") {
                gatewayFlag = String(argument.dropFirst("--gateway=".count))
            } else if argument.hasPrefix("-") {
                printError("agentrond: unknown option \(argument); see agentrond --help")
                return 2
            }
        }
        let gateway: GatewayConfig?
        switch GatewayConfig.resolve(flag: gatewayFlag, environment: environment) {
        case .success(let config): gateway = config
        case .failure(let error):
            printError("agentrond: \(error)")
            return 2
        }

        raiseFileLimit()
        let paths = AgentronPaths.current(environment: environment)
        let logLevel = Logger.Level(rawValue: environment["AGENTRON_LOG_LEVEL"] ?? "") ?? .info
        // Under systemd with stderr on the journal: structured entries (issue #6); plain lines otherwise.
        let journalHandler = SystemdIntegration.logHandlerFactory(environment: environment, logLevel: logLevel)
        LoggingSystem.bootstrap { label in
            if let journalHandler { return journalHandler(label) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "agentrond")

        // Taken before the directories: a socket passed by systemd lives in a directory systemd
        // made and owns (RuntimeDirectory=), so there is nothing of ours to check there.
        let inheritedSocket = SystemdIntegration.takeListenSocket(environment: environment, logger: logger)
        if inheritedSocket == nil {
            do {
                try RuntimeDirectory.prepare(paths.runtimeDirectoriesToOwn, mode: geteuid() == 0 ? 0o755 : 0o700)
            } catch {
                printError("agentrond: \(error)")
                return 1
            }
        }
        for directory in [paths.stateDirectory, paths.logDirectory] {
            do { try FileIO.makeDirectories(directory, mode: 0o700) } catch {
                printError("agentrond: \(error)")
                return 1
            }
        }
        let lock: DaemonLock
        switch DaemonLock.acquire(path: paths.lockPath) {
        case .success(let acquired): lock = acquired
        case .failure(let error):
            printError("agentrond: \(error)")
            return 1
        }
        defer { lock.release() }

        // Writes to a client that went away must fail with EPIPE, not kill the daemon.
        signal(SIGPIPE, SIG_IGN)
        if !Spawner.becomeSubreaper() {
            logger.warning("cannot become a child subreaper; processes that leave an engine's session may be missed")
        }

        let cgroups = Cgroups.detect(environment: environment)
        logger.info(
            cgroups.map { "engines get their own cgroup under \($0.base)" }
                ?? "no writable cgroup v2 subtree: engines are tracked by session and as subreaper")
        let registrar = Registrar(config: .resolve(paths: paths, environment: environment), logger: logger)
        let instance: String
        switch DaemonIdentity.load(path: paths.instanceIDPath) {
        case .success(let id): instance = id
        case .failure(let error):
            printError("agentrond: \(error); check that the state directory \(paths.stateDirectory) is writable")
            return 1
        }
        let router = GatewayRouter()
        let activity = GatewayActivity()
        let registry = ServerRegistry(
            paths: paths, daemonEnvironment: environment, cgroups: cgroups, registrar: registrar, instance: instance,
            logger: logger, router: router, activity: activity)
        if let gateway { await registry.gatewayConfigured(gateway) }
        // Re-adopting engines probes each one; tell systemd this may take a while.
        SystemdIntegration.extendStartup(.seconds(60))
        await registry.restoreFromDisk()
        await registry.startAutostartProfiles(catalog: ProfileCatalog(paths: paths))
        let info = DaemonInfo(
            version: agentronVersion, pid: getpid(), socket: paths.socketPath, stateDirectory: paths.stateDirectory,
            startedAt: Double(time(nil)))
        var server = ControlServer(
            socketPath: paths.socketPath, api: ControlAPI(registry: registry, daemonInfo: info), logger: logger,
            onListening: { SystemdIntegration.notifyReady() },
            inheritedSocket: inheritedSocket)
        server.socketGroup = ControlServer.socketGroup(environment: environment)
        if let text = environment["AGENTRON_CONTROL_IDLE_TIMEOUT"], let span = TimeSpan(parsing: text),
            span.seconds > 0,
            span <= Profile.Limits.maxDuration
        {
            server.requestTimeout = span.duration
        }
        let engines = EngineService(registry: registry, liveRestore: liveRestore, logger: logger)
        // Services shut down in reverse order: systemd hears STOPPING=1 first, then engines
        // stop while the API still answers.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: server), .init(service: engines),
        ]
        if let gateway {
            // A gateway that cannot bind returns at once: the daemon keeps supervising.
            services.append(
                .init(
                    service: GatewayServer(
                        config: gateway, router: router, activity: activity,
                        demand: GatewayDemand(registry: registry), logger: logger),
                    successTerminationBehavior: .ignore))
        }
        services += [
            .init(service: DaemonLogRotation(log: LogFiles(directory: paths.stateDirectory, name: "agentrond"))),
            .init(service: SystemdIntegration.service(registry: registry, logger: logger)),
        ]
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info(
            "agentrond \(agentronVersion) starting",
            metadata: ["pid": "\(getpid())", "stateDirectory": "\(paths.stateDirectory)"])
        do {
            try await group.run()
        } catch {
            logger.error("agentrond stopped: \(error)")
            return 1
        }
        logger.info("agentrond stopped")
        return 0
    }

    /// Each server holds a pidfd, its log pipe and a probe connection: a thousand servers
    /// need more descriptors than a shell's usual soft limit of 1,024. Raised to the hard
    /// limit, at most 65,536 (what the systemd units set), never lowered.
    static func raiseFileLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        let wanted = min(limit.rlim_max, 65536)
        guard limit.rlim_cur < wanted else { return }
        limit.rlim_cur = wanted
        _ = setrlimit(resource, &limit)
    }

    static let usage = """
        USAGE: agentrond [--live-restore] [--gateway host:port|off] [--version] [--help]

        The agentron supervisor daemon. It owns every server started with `agentron up`,
        serves the control API on a Unix socket, and stops every engine it runs on SIGTERM.
        With --live-restore (or AGENTRON_LIVE_RESTORE=1) it leaves them running instead, and
        the next agentrond re-adopts them; after a crash (kill -9) it always does.

        Paths: AGENTRON_HOME=<dir> puts the socket, state and configuration under <dir>;
        root uses /run/agentron, /var/lib/agentron, /etc/agentron; a user the XDG directories.
        AGENTRON_LOG_LEVEL=debug|info|warning|error sets the log level (default info).

        The gateway: one OpenAI endpoint for every server, routed by the request's model, on
        127.0.0.1:8400 (docs/gateway.md). --gateway or AGENTRON_GATEWAY=host:port moves it,
        off turns it off; any address but loopback needs AGENTRON_GATEWAY_API_KEY.
        """

    static func printError(_ message: String) {
        let bytes = Array((message + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

/// Keeps the engines: on graceful shutdown it stops every one of them and waits until they
/// are gone (docs/state-machine.md: nothing outlives the daemon's stop unless live restore is asked for).
struct EngineService: Service {
    let registry: ServerRegistry
    let liveRestore: Bool
    let logger: Logger

    func run() async throws {
        // Servers with a ttl stop when the gateway has been idle for them that long.
        let idleChecks = Task { await registry.runIdleChecks() }
        // Cancellation (a second signal) skips straight to the stop below.
        try? await gracefulShutdown()
        idleChecks.cancel()
        if liveRestore {
            logger.info("live restore: leaving engines running for the next daemon")
            await registry.leaveRunning()
            return
        }
        logger.info("stopping every engine before exit")
        // systemd kills the daemon when TimeoutStopSec runs out, and with KillMode=process
        // the engines would then live on unsupervised. A profile's stop_timeout may be
        // longer than the unit's timeout, so the daemon asks for more time while engines
        // are still stopping (issue #10).
        let keepAlive = Task {
            while !Task.isCancelled {
                SystemdIntegration.extendStop(Self.stopExtension)
                try? await Task.sleep(for: Self.stopExtensionInterval)
            }
        }
        // Unstructured, so a cancelled group does not cut the engines' grace periods short.
        await Task { await registry.shutdownAll() }.value
        keepAlive.cancel()
    }

    /// Each EXTEND_TIMEOUT_USEC asks for this much more time, and is sent again well
    /// before it runs out; it stops once the engines are gone.
    static let stopExtension: Duration = .seconds(30)
    static let stopExtensionInterval: Duration = .seconds(10)
}

/// Keeps `agentrond.log` (the daemon's stderr when the CLI started it in the background)
/// under the same cap as an engine's log, rotating it copy-then-truncate: the daemon runs
/// for months and must not fill the disk with its own lines (issue #10). Under systemd
/// stderr is the journal and the file does not exist; then this does nothing.
struct DaemonLogRotation: Service {
    let log: LogFiles
    static let interval: Duration = .seconds(60)

    func run() async throws {
        // Returns at the group's graceful shutdown (an early return would end the group).
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                log.rotateIfNeeded()
                try? await Task.sleep(for: Self.interval)
            }
        }
    }
}
