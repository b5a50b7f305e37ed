import AgentronConfig
import AgentronCore
import AgentronEngines
import AgentronHTTP
import AgentronProcess
import Glibc
import Logging

/// All servers this daemon knows, by name. The control API calls it; it knows nothing
/// about HTTP (the wire adapter is ControlAPI; this actor owns the state).
actor ServerRegistry {
    var supervisors: [String: Supervisor] = [:]
    let paths: AgentronPaths
    let daemonEnvironment: [String: String]
    let logger: Logger
    let store: StateStore
    let cgroups: Cgroups?
    let registrar: Registrar
    /// This daemon's identity (a random id kept in the state directory): containers carry
    /// it as a label, and cleanup and adoption touch only containers with it (issue #10).
    let instance: String
    /// Auto ports handed out to this daemon's servers.
    let ports: PortTable

    /// The gateway's routing snapshot, republished after every change (docs/gateway.md).
    let router: GatewayRouter
    /// Requests in flight through the gateway per server, for the idle checks.
    let activity: GatewayActivity
    /// The gateway's counters (`/metrics`, `agentron gateway`).
    let metrics = GatewayMetrics()
    /// Requests the gateway holds while their servers start.
    let held = HeldRequests()
    /// The profiles the gateway may start, read again only when a file changed.
    var profileCatalog: ProfileCatalogCache

    init(
        paths: AgentronPaths, daemonEnvironment: [String: String], cgroups: Cgroups?, registrar: Registrar,
        instance: String, logger: Logger, router: GatewayRouter = GatewayRouter(),
        activity: GatewayActivity = GatewayActivity()
    ) {
        self.paths = paths
        self.router = router
        self.activity = activity
        self.instance = instance
        self.ports = PortTable(range: PortTable.range(environment: daemonEnvironment))
        self.daemonEnvironment = daemonEnvironment
        self.cgroups = cgroups
        self.registrar = registrar
        self.logger = logger
        self.store = StateStore(path: paths.stateFile)
        self.profileCatalog = ProfileCatalogCache(ProfileCatalog(paths: paths))
    }

    func makeSupervisor(_ profile: Profile, driver: any EngineDriver) -> Supervisor {
        Supervisor(
            profile: profile, driver: driver, logDirectory: paths.logDirectory, daemonEnvironment: daemonEnvironment,
            cgroups: cgroups, ports: ports, instance: instance, stateDirectory: paths.stateDirectory, logger: logger,
            onChange: { [weak self] in await self?.persist() })
    }

    /// Starts `profile`, or confirms it is already up with the same spec. Calls for one name
    /// run one at a time: each checks, awaits and acts, and two concurrent `up`s of a new
    /// name must not both create a supervisor (one would run unknown to the registry).
    func start(_ profile: Profile) async throws(APIError) -> ServerInfo {
        try validate(profile)
        await lockName(profile.name)
        defer { unlockName(profile.name) }
        let driver: any EngineDriver
        do { driver = try Engines.driver(for: profile.engine) } catch {
            throw APIError(.invalidRequest, "server \"\(profile.name)\": \(error)")
        }
        if let existing = supervisors[profile.name] {
            let running = await existing.state
            let current = await existing.profile
            if running != .stopped && running != .failed {
                guard sameSpec(current, profile) else {
                    throw APIError(
                        .conflict,
                        "server \"\(profile.name)\" is already \(running.rawValue) with a different spec (\(describeDifference(current, profile))); stop it first with `agentron down \(profile.name)`, or choose another --name"
                    )
                }
                // Same spec: `up` is idempotent.
                await existing.start(profile: profile)
                return await existing.info(detailed: false)
            }
            await stopGroupMembers(for: profile)
            await existing.start(profile: profile)
            return await existing.info(detailed: false)
        }
        if case .fixed(let port) = profile.port, let user = await portUser(port, except: profile.name) {
            throw APIError(
                .portInUse,
                "server \"\(profile.name)\": port \(port) is already used by server \"\(user)\"; choose another with --port, or use --port auto"
            )
        }
        await stopGroupMembers(for: profile)
        let supervisor = makeSupervisor(profile, driver: driver)
        supervisors[profile.name] = supervisor
        await supervisor.start(profile: profile)
        return await supervisor.info(detailed: false)
    }

    func list(includeStopped: Bool) async -> [ServerInfo] {
        var result: [ServerInfo] = []
        for name in supervisors.keys.sorted() {
            guard let supervisor = supervisors[name] else { continue }
            var info = await supervisor.info(detailed: false)
            guard includeStopped || info.state != .stopped else { continue }
            await addGatewayUse(&info, supervisor)
            result.append(info)
        }
        return result
    }

    /// What `ps` shows of the gateway's traffic: requests in flight, idle time, the ttl.
    func addGatewayUse(_ info: inout ServerInfo, _ supervisor: Supervisor) async {
        info.ttlSeconds = await supervisor.profile.ttl?.seconds
        guard info.state == .ready || info.state == .unhealthy else { return }
        let use = activity.current(info.name)
        if use.inFlight > 0 { info.requestsInFlight = use.inFlight }
        let sinceReady = max(0, UnixTime.now - info.since)
        info.idleSeconds = use.lastEnded.map { min(sinceReady, max(0, Monotonic.now - $0)) } ?? sinceReady
    }

    func info(_ name: String, detailed: Bool) async throws(APIError) -> ServerInfo {
        try await supervisor(name).info(detailed: detailed)
    }

    /// Waits up to `timeout` for the server to settle (ready, stopped or failed).
    func wait(_ name: String, timeout: Duration) async throws(APIError) -> ServerInfo {
        let supervisor = try supervisor(name)
        await supervisor.waitUntilSettled(timeout: timeout)
        return await supervisor.info(detailed: false)
    }

    /// Stops a server and waits until nothing of its engine is left.
    func stop(_ name: String, timeout: TimeSpan?) async throws(APIError) -> ServerInfo {
        let supervisor = try supervisor(name)
        if let timeout { await supervisor.overrideStopTimeout(timeout) }
        await supervisor.stop()
        await supervisor.waitUntilDown()
        return await supervisor.info(detailed: false)
    }

    /// `agentron rm`: forgets a stopped or failed server: its record, its logs and its auto
    /// port, so what the daemon keeps does not grow with every name ever started
    /// (issue #10). A running server is refused; `force` stops it first.
    func remove(_ name: String, force: Bool) async throws(APIError) -> ServerInfo {
        await lockName(name)
        defer { unlockName(name) }
        let supervisor = try supervisor(name)
        let state = await supervisor.state
        if state != .stopped && state != .failed {
            guard force else {
                throw APIError(
                    .conflict,
                    "server \"\(name)\" is \(state.rawValue); stop it first with `agentron down \(name)`, or use `agentron rm --force \(name)`"
                )
            }
            await supervisor.stop()
            await supervisor.waitUntilDown()
        }
        let info = await supervisor.info(detailed: false)
        supervisors.removeValue(forKey: name)
        ports.release(server: name)
        LogFiles(directory: paths.logDirectory, name: name).remove()
        await persist()
        return info
    }

    /// `agentron restart`: stop (if running) and start again with the same spec; clears a
    /// failed state and its counters.
    func restart(_ name: String) async throws(APIError) -> ServerInfo {
        // Under the name's lock, like `up` and `rm`: an `rm` must not forget a server a
        // restart is bringing back (`down` needs no lock: it never starts anything).
        await lockName(name)
        defer { unlockName(name) }
        let supervisor = try supervisor(name)
        await supervisor.restart()
        return await supervisor.info(detailed: false)
    }

    /// The server's log files, and the secrets to blank out of what they show.
    func logFiles(_ name: String) async throws(APIError) -> (files: LogFiles, secrets: [String]) {
        guard let supervisor = supervisors[name] else { throw notFound(name) }
        return (LogFiles(directory: paths.logDirectory, name: name), await supervisor.profile.secretValues)
    }

    /// Daemon shutdown with live restore: engines keep running; what they are is on disk
    /// for the next daemon to re-adopt.
    func leaveRunning() async {
        await persist()
    }

    /// Daemon shutdown: stop every engine (in parallel) and wait until they are gone.
    func shutdownAll() async {
        await withTaskGroup(of: Void.self) { group in
            for supervisor in supervisors.values {
                group.addTask {
                    await supervisor.shutdown()
                    await supervisor.waitUntilDown()
                }
            }
        }
        await persist()
    }

    func summary() async -> (total: Int, ready: Int) {
        var ready = 0
        var total = 0
        for supervisor in supervisors.values {
            let state = await supervisor.state
            if state != .stopped { total += 1 }
            if state == .ready { ready += 1 }
        }
        return (total, ready)
    }

    // MARK: Helpers

    private func supervisor(_ name: String) throws(APIError) -> Supervisor {
        guard let supervisor = supervisors[name] else { throw notFound(name) }
        return supervisor
    }

    private func notFound(_ name: String) -> APIError {
        let known = supervisors.keys.sorted()
        let hint =
            known.isEmpty
            ? "no servers are known; start one with `agentron up`" : "known: \(known.joined(separator: ", "))"
        return APIError(.notFound, "no server named \"\(name)\" (\(hint))")
    }

    /// The same limits and engine rules the YAML reader applies (Profile+Validation.swift,
    /// the engine's driver): whatever client sent it, a profile that passes cannot make the
    /// daemon trap or grow without bound.
    private func validate(_ profile: Profile) throws(APIError) {
        guard let problem = Engines.problem(in: profile) else { return }
        let subject = Profile.isValidName(profile.name) ? "server \"\(profile.name)\": " : ""
        throw APIError(.invalidRequest, "\(subject)invalid profile: \(problem)")
    }

    // MARK: One start per name at a time

    private var busyNames: Set<String> = []
    private var nameWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// Waits until no other start of `name` runs, then marks it running. The check and the
    /// mark happen with no suspension between them (docs/conventions.md rule 4).
    private func lockName(_ name: String) async {
        while busyNames.contains(name) {
            await withCheckedContinuation { nameWaiters[name, default: []].append($0) }
        }
        busyNames.insert(name)
    }

    private func unlockName(_ name: String) {
        busyNames.remove(name)
        for waiter in nameWaiters.removeValue(forKey: name) ?? [] { waiter.resume() }
    }

    private func portUser(_ port: Int, except name: String) async -> String? {
        for (other, supervisor) in supervisors where other != name {
            let state = await supervisor.state
            guard state != .stopped, state != .failed else { continue }
            let info = await supervisor.info(detailed: false)
            if info.port == port { return other }
            if case .fixed(port) = await supervisor.profile.port { return other }
        }
        return nil
    }

    /// Equal apart from where the profile came from.
    private func sameSpec(_ a: Profile, _ b: Profile) -> Bool {
        var a = a
        var b = b
        a.source = nil
        b.source = nil
        return a == b
    }

    private func describeDifference(_ current: Profile, _ wanted: Profile) -> String {
        var fields: [String] = []
        if current.engine != wanted.engine {
            fields.append("engine \(current.engine.rawValue) → \(wanted.engine.rawValue)")
        }
        if current.model != wanted.model { fields.append("model \(current.model) → \(wanted.model)") }
        if current.port != wanted.port { fields.append("port \(current.port) → \(wanted.port)") }
        if current.host != wanted.host { fields.append("host \(current.host) → \(wanted.host)") }
        if current.args != wanted.args { fields.append("args differ") }
        if current.env != wanted.env { fields.append("env differs") }
        if current.gpus != wanted.gpus { fields.append("gpus differ") }
        return fields.isEmpty ? "settings differ" : fields.joined(separator: ", ")
    }

    /// Writes the state file and syncs the provider config after a change. Calls arrive
    /// from many tasks at once; one pass runs at a time and a change during a pass causes
    /// one more pass, so the last write always reflects the latest state (an older
    /// snapshot never lands after a newer one).
    func persist() async {
        persistPending = true
        if persistTask == nil {
            persistTask = Task { await self.drainPersist() }
        }
        await persistTask?.value
    }

    /// The gateway's address and key once it listens: its providers.json entry.
    private(set) var gatewayListening: GatewayConfig?

    /// The gateway is listening (or, with nil, is not): registered as one provider.
    func gatewayIsListening(_ config: GatewayConfig?) async {
        gatewayListening = config
        if let config { gatewayState = (config.address, nil) }
        await persist()
    }

    /// The gateway's address, and why it does not listen (nil while it does); nil when the
    /// gateway is off. `agentron doctor` shows it.
    private(set) var gatewayState: (address: String, error: String?)?

    /// Whether the configured gateway asks clients for a key.
    private(set) var gatewayKeyRequired = false

    /// The gateway is configured and about to bind.
    func gatewayConfigured(_ config: GatewayConfig) {
        gatewayState = (config.address, "not listening yet")
        gatewayKeyRequired = config.apiKey != nil
    }

    func gatewayFailed(_ config: GatewayConfig, error: String) {
        gatewayState = (config.address, error)
    }

    private var persistPending = false
    private var persistTask: Task<Void, Never>?
    /// Servers in the provider config now: a registered server keeps its entry, marked
    /// "restarting", while it restarts (issue #4).
    private var registered: Set<String> = []

    /// The pending check and clearing the task happen with no suspension between them, so
    /// a request that arrives during a pass is always served by one more pass.
    private func drainPersist() async {
        while persistPending {
            persistPending = false
            await persistPass()
        }
        persistTask = nil
    }

    private func persistPass() async {
        var records: [StateStore.Record] = []
        var desired: [RegisteredServer] = []
        var routes: [GatewayRoute] = []
        for name in supervisors.keys.sorted() {
            guard let supervisor = supervisors[name] else { continue }
            let record = await supervisor.record
            records.append(record)
            let info = await supervisor.info(detailed: false)
            routes.append(
                GatewayRoute(
                    server: name, model: record.profile.model, aliases: record.profile.aliasList,
                    servedModel: info.servedModel, host: record.profile.host, port: info.port,
                    apiKey: record.profile.engine.driver.apiKey(record.profile), state: info.state,
                    reason: info.reason))
            guard record.profile.register, let endpoint = info.endpoint else { continue }
            let status: String? =
                switch info.state {
                case .ready: "ready"
                case .unhealthy: "unhealthy"
                case .starting, .backoff: registered.contains(name) ? "restarting" : nil
                case .stopped, .stopping, .failed: nil
                }
            guard let status else { continue }
            // The key clients must send and the context length, as the engine's driver reads
            // them from the profile.
            let driver = record.profile.engine.driver
            desired.append(
                RegisteredServer(
                    name: name, engine: info.engine, endpoint: endpoint, model: info.servedModel,
                    apiKey: driver.apiKey(record.profile), status: status,
                    contextLength: driver.contextLength(record.profile)))
        }
        // The gateway sees the change before the slower file writes.
        router.publish(GatewayRouting(routes: routes))
        if let gateway = gatewayListening {
            // One entry for the gateway, first so its id wins: every name it routes.
            var names: [String] = []
            for route in routes { names += route.names }
            for profile in gatewayProfiles() { names += [profile.name, profile.model] + profile.aliasList }
            var seen = Set<String>()
            names = names.filter { seen.insert($0).inserted }
            desired.insert(
                RegisteredServer(
                    name: "agentron", engine: .command, endpoint: "http://\(gateway.address)",
                    model: names.first ?? "", apiKey: gateway.apiKey, status: "ready", gatewayModels: names),
                at: 0)
        }
        do { try store.save(records) } catch {
            logger.error("cannot save state: \(error)")
        }
        registered = Set(desired.map(\.name))
        await registrar.sync(desired)
    }

    /// How long a group member's requests in flight may keep it up once another member is
    /// starting: a generation a minute long finishes; a stuck one does not block the swap.
    static let groupDrainTimeout: Duration = .seconds(60)

    /// `group:`: its members are exclusive. Before `profile` starts, every other member that
    /// is up is stopped, once the gateway's requests to it have finished (at most
    /// `groupDrainTimeout`), and gone before the new one spawns (one GPU, one model).
    func stopGroupMembers(for profile: Profile) async {
        guard let group = profile.group else { return }
        for (name, supervisor) in supervisors where name != profile.name {
            guard await supervisor.profile.group == group else { continue }
            switch await supervisor.state {
            case .stopped, .failed: continue
            case .starting, .ready, .unhealthy, .backoff, .stopping: break
            }
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: Self.groupDrainTimeout)
            while activity.current(name).inFlight > 0, clock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            logger.info("stopping \(name) for \(profile.name) (group \(group))")
            await supervisor.preempt(by: profile.name, group: group)
            await supervisor.waitUntilDown()
        }
    }

    /// How often servers with a `ttl` are checked for idleness: a ttl is kept to the second.
    static let idleCheckInterval: Duration = .seconds(1)

    /// Reports the gateway's traffic to every server with a `ttl`, every second, until the
    /// task is cancelled (the daemon's EngineService runs it).
    func runIdleChecks() async {
        while !Task.isCancelled {
            for (name, supervisor) in supervisors {
                if await supervisor.profile.ttl != nil { await supervisor.checkIdle(activity.current(name)) }
            }
            try? await Task.sleep(for: Self.idleCheckInterval)
        }
    }

    func providers() async -> ProvidersStatus {
        await registrar.status()
    }
}
