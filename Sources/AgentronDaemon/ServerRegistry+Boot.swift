import AgentronConfig
import AgentronCore
import AgentronEngines
import AgentronProcess
import Glibc
import Logging

// What the registry does when the daemon starts: live restore from the state file, cleanup
// of containers a crashed daemon left, and the boot start of autostart profiles (with the
// GPU wait). Every server it takes up goes through the same Supervisor as an `up`.
extension ServerRegistry {
    /// Live restore: takes up every server the state file lists (docs/state-machine.md). Engines still
    /// running are re-adopted untouched; dead ones are restarted by their policy.
    func restoreFromDisk() async {
        let records: [StateStore.Record]
        do {
            records = try store.load()
        } catch {
            // Keep the unreadable file for a human; start empty rather than not at all.
            logger.error(
                "cannot read \(paths.stateFile): \(error); starting with no servers (the file is left as it is)")
            return
        }
        var bootStarts: [Profile] = []
        for record in records {
            if let problem = Engines.problem(in: record.profile) {
                // A state file edited by hand, or written by an older daemon with looser
                // rules: never supervise it (its numbers could trap), and never leave its
                // engine running unsupervised either: what is left of it is killed.
                var known = Dictionary(
                    (record.descendants ?? []).map { ($0.pid, $0.startTime) }, uniquingKeysWith: { a, _ in a })
                if let pid = record.pid, let start = record.processStartTime { known[pid] = start }
                let killed = await ProcessTree.killRemnants(
                    known: known, cgroup: record.cgroup.map(EngineCgroup.init(path:)))
                logger.error(
                    "cannot restore server \"\(record.profile.name)\": its saved profile is invalid (\(problem)); \(killed.isEmpty ? "nothing of it was running" : "stopped what was left of its engine (pids \(killed))"); start it again with `agentron up`"
                )
                continue
            }
            guard supervisors[record.profile.name] == nil, let driver = try? Engines.driver(for: record.profile.engine)
            else {
                logger.error(
                    "cannot restore server \"\(record.profile.name)\": engine \(record.profile.engine.rawValue) is not available"
                )
                continue
            }
            let supervisor = makeSupervisor(record.profile, driver: driver)
            supervisors[record.profile.name] = supervisor
            await supervisor.restore(from: record)
            // Up when the daemon last stopped (cleanly: engines were stopped with it).
            if await supervisor.startsAtBoot {
                bootStarts.append(record.profile)
            }
        }
        if !records.isEmpty {
            logger.info("restored \(records.count) server(s) from \(paths.stateFile)")
        }
        await persist()
        for profile in bootStarts { bootStart(profile) }
        Task { await self.removeLeftoverContainers() }
    }

    /// Containers this daemon started for servers that no longer run (their shim was
    /// killed with the daemon, say) are removed; those of re-adopted servers are kept.
    private func removeLeftoverContainers() async {
        // Before the random identity (issue #10) the label held the state directory's path:
        // containers left by that version are this daemon's too.
        for driver in Engines.all {
            for leftover in await driver.leftovers(
                daemonEnvironment: daemonEnvironment, instances: [instance, paths.stateDirectory])
            {
                if let supervisor = supervisors[leftover.server] {
                    let state = await supervisor.state
                    if state.hasProcess || state == .backoff { continue }
                }
                logger.info(
                    "removing leftover \(leftover.kind)",
                    metadata: ["server": "\(leftover.server)", "\(leftover.kind)": "\(leftover.id.prefix(12))"])
                await driver.removeLeftover(leftover, daemonEnvironment: daemonEnvironment)
            }
        }
    }

    /// Starts `autostart: true` profiles from the search path that are not already known.
    func startAutostartProfiles(catalog: ProfileCatalog) {
        for entry in catalog.entries() {
            if let error = entry.error {
                logger.error("skipping invalid profile at boot: \(error)")
                continue
            }
            guard let profile = entry.profile, profile.autostart, supervisors[profile.name] == nil else { continue }
            // The system's autostart profiles are the system daemon's to start; a user
            // daemon starting them too would run every such model twice (issue #10).
            if !Self.mayAutostart(profileAt: entry.path, daemonUID: getuid()) {
                logger.info(
                    "not autostarting a system profile in a user daemon",
                    metadata: ["server": "\(profile.name)", "profile": "\(entry.path)"])
                continue
            }
            logger.info("autostart", metadata: ["server": "\(profile.name)", "profile": "\(entry.path)"])
            bootStart(profile)
        }
    }

    /// Whether a daemon of `daemonUID` autostarts the profile at `path`: the system's
    /// profiles (`/etc/agentron/profiles`) only by the system daemon (root).
    static func mayAutostart(profileAt path: String, daemonUID: uid_t) -> Bool {
        daemonUID == 0 || !AgentronPaths.systemProfileDirectories.contains { path.hasPrefix($0 + "/") }
    }

    /// How long a GPU profile waits at boot for its device nodes: engines started before
    /// the driver silently run on the CPU (a known Ollama failure). AGENTRON_GPU_WAIT
    /// overrides it (a slow driver, or tests).
    static let defaultGPUWaitTimeout: Duration = .seconds(120)
    private var gpuWaitTimeout: Duration {
        daemonEnvironment["AGENTRON_GPU_WAIT"].flatMap(TimeSpan.init(parsing:))?.duration ?? Self.defaultGPUWaitTimeout
    }
    static let gpuPollInterval: Duration = .milliseconds(500)

    /// A start at daemon start, in the background: GPU profiles first wait (bounded) for
    /// their device nodes; the daemon answers meanwhile.
    private func bootStart(_ profile: Profile) {
        let timeout = gpuWaitTimeout
        Task {
            let devices = GPUDevices.required(by: profile)
            if !devices.isEmpty {
                let missing = await GPUDevices.waitFor(devices, timeout: timeout, poll: Self.gpuPollInterval) {
                    self.logger.info(
                        "waiting for GPU devices", metadata: ["server": "\(profile.name)", "missing": "\($0)"])
                }
                if !missing.isEmpty {
                    await self.failBootStart(
                        profile,
                        reason:
                            "GPU devices \(missing.joined(separator: ", ")) did not appear within \(TimeSpan(seconds: timeout.seconds)); is the NVIDIA driver loaded? Start it with `agentron restart \(profile.name)` once it is"
                    )
                    return
                }
            }
            do {
                _ = try await self.start(profile)
            } catch {
                self.logger.error("cannot start \(profile.name) at boot: \(error)")
            }
        }
    }

    private func failBootStart(_ profile: Profile, reason: String) async {
        let supervisor: Supervisor
        if let existing = supervisors[profile.name] {
            supervisor = existing
        } else {
            guard let driver = try? Engines.driver(for: profile.engine) else { return }
            supervisor = makeSupervisor(profile, driver: driver)
            supervisors[profile.name] = supervisor
        }
        await supervisor.failStart(reason: reason)
    }
}
