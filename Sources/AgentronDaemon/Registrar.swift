import AgentronConfig
import AgentronCore
import AgentronJSON
import Dispatch
import Glibc
import Logging

/// Keeps the shared provider config (and, opted in, OpenClaw's) true: the servers the
/// daemon passes to `sync` are registered, every other agentron-owned entry is removed, and
/// nothing else in either file is touched (docs/providers.md, issue #4).
///
/// Every pass runs one at a time (a chain of tasks), and each takes the file's sidecar
/// lock, reads, plans without I/O, and writes atomically, with no suspension point between
/// reading and renaming. A file that cannot be parsed is left as it is and retried when it
/// changes; the servers keep running either way.
public actor Registrar {
    /// How often the files are checked for changes by others: a corrupt file fixed by hand,
    /// or an app that dropped agentron's entries. A stat every 2 s costs nothing.
    public static let pollInterval: Duration = .seconds(2)
    /// How long a pass waits for another writer's lock before giving up until the next
    /// poll; writers hold it for milliseconds.
    public static let lockTimeout: Duration = .seconds(10)
    /// Mode of a provider file agentron creates: entries may carry API keys. An existing
    /// file keeps its own mode.
    static let newFileMode: mode_t = 0o600
    /// Mode of a directory agentron creates for the file (a config directory, like ~/.config's).
    static let newDirectoryMode: mode_t = 0o755

    struct Target {
        var kind: String
        var path: String
        var entries: [ProviderEntryView] = []
        var error: String?
        var snippet: String?
        var lastWrite: Double?
        /// The file as the last pass saw or left it; a different stamp means someone changed it.
        var seen: FileStamp?
        /// A pass failed for a reason a later try may not meet (a lock held, a write error).
        var retry = false
        /// The Agentron app's database: whether the file was there at the last pass.
        var present = true
        /// The app's database in WAL mode: its writes land in `-wal` until a checkpoint.
        var seenWAL: FileStamp?
    }

    let config: RegistrarConfig
    let logger: Logger
    private var desired: [RegisteredServer] = []
    /// The public copy's entries as last written (`updatedAt` aside).
    var publicCopyWritten: String?
    /// Set by the first `sync`: until then the daemon has not said what runs (live restore
    /// keeps entries across a daemon restart), so nothing is written or removed.
    private var active = false
    private var targets: [Target]
    private var tail: Task<Void, Never>?
    /// Log lines made while the thread acts as another user, written once it is root again:
    /// a log handler that opens a file or socket must do so as the daemon.
    private var heldLogs: [(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata)]?
    private var watcher: Task<Void, Never>?

    public init(config: RegistrarConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        var targets = [Target(kind: ProviderTarget.agentron, path: config.providersPath)]
        if let openClaw = config.openClawPath {
            targets.append(Target(kind: ProviderTarget.openClaw, path: openClaw))
        }
        if let database = config.agentronAppPath {
            targets.append(Target(kind: ProviderTarget.agentronApp, path: database))
        }
        self.targets = targets
    }

    deinit {
        watcher?.cancel()
    }

    /// Makes the files say exactly `servers` (ready, unhealthy or restarting ones with
    /// `register: true`): adds and updates these, removes every other agentron-owned entry.
    /// Idempotent; nothing is written when nothing changed (`updatedAt` aside). Returns
    /// when the files are written, or the reason they could not be is in `status()`.
    public func sync(_ servers: [RegisteredServer]) async {
        var byName: [String: RegisteredServer] = [:]
        for server in servers where byName[server.name] == nil { byName[server.name] = server }
        desired = byName.values.sorted { $0.name < $1.name }
        active = true
        startWatching()
        await runPass()
        writePublicCopy(desired)
    }

    /// The engines' entries without the gateway's, which only providers.json carries.
    static func servers(_ entries: [RegisteredServer]) -> [RegisteredServer] {
        entries.filter { $0.gatewayModels == nil }
    }

    /// Stops watching the files (after the daemon's last `sync([])` at shutdown).
    public func stop() {
        watcher?.cancel()
        watcher = nil
    }

    public func status() -> ProvidersStatus {
        var result = targets.map { target in
            ProviderTarget(
                kind: target.kind, path: target.path, enabled: target.present, entries: target.entries,
                error: target.error, snippet: target.snippet, lastWrite: target.lastWrite)
        }
        if config.openClawPath == nil {
            result.append(ProviderTarget(kind: ProviderTarget.openClaw, path: nil, enabled: false, entries: []))
        }
        if config.agentronAppPath == nil {
            result.append(ProviderTarget(kind: ProviderTarget.agentronApp, path: nil, enabled: false, entries: []))
        }
        return ProvidersStatus(targets: result)
    }

    // MARK: Passes

    /// Queues a pass behind any running one and waits for it. Each pass reads `desired`
    /// when it starts, so a burst of syncs ends with the latest set written.
    private func runPass() async {
        let previous = tail
        let task = Task {
            await previous?.value
            await self.pass()
        }
        tail = task
        await task.value
    }

    private func pass() async {
        guard active else { return }
        for index in targets.indices {
            await pass(target: index)
        }
    }

    private func pass(target index: Int) async {
        if targets[index].kind == ProviderTarget.agentronApp {
            await passAgentronApp(index)
            return
        }
        let path = targets[index].path
        if desired.isEmpty, FileStamp.of(path) == nil {
            // Nothing to register and no file: nothing to create, not even a directory or a
            // lock file. A file appearing later changes the stamp and brings a pass.
            targets[index].entries = []
            targets[index].error = nil
            targets[index].snippet = nil
            targets[index].retry = false
            targets[index].seen = nil
            return
        }
        if targets[index].kind == ProviderTarget.openClaw, FileStamp.of(path) == nil {
            // Never created, nor its directory or lock: OpenClaw's setup writes a complete
            // file, and one holding only models.providers would stop its gateway. The file
            // appearing changes the stamp and brings a pass.
            targets[index].entries = []
            targets[index].snippet = OpenClawFile.snippet(Self.servers(desired), path: path)
            targets[index].seen = nil
            fail(index, OpenClawFile.missing(path), retry: false)
            return
        }
        // Tries until the lock is free: each try is synchronous (its identity switch must
        // not span an await), the waits between them are not.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: Self.lockTimeout)
        var wait = ProviderFileLock.firstRetry
        while true {
            guard case .busy = attempt(target: index) else { return }
            guard clock.now < deadline else { break }
            do {
                try await Task.sleep(for: wait)
            } catch {
                break
            }
            wait = min(wait * 2, ProviderFileLock.maxRetry)
        }
        let timedOut = ProviderFileLock.Failure.timedOut(path: path + ".lock", after: Self.lockTimeout)
        fail(index, "\(timedOut)", retry: true)
    }

    enum Attempt {
        /// Written, left as it was, or failed (the reason is in the target).
        case done
        /// Another process holds the lock.
        case busy
    }

    /// One try at a pass, synchronous from start to end: as the owner of the file's
    /// directory (FileIdentity: root never creates, follows or replaces anything there that
    /// this user could not), make the directory, take the lock, read, plan, write, release.
    private func attempt(target index: Int) -> Attempt {
        let path = targets[index].path
        let identity = FileIdentity.forWriting(path)
        let outcome: Attempt?
        heldLogs = []
        do {
            outcome = try FileIdentity.run(as: identity) { locked(target: index, identity: identity) }
        } catch {
            outcome = nil
            fail(index, "\(path): \(error)", retry: true)
        }
        let held = heldLogs ?? []
        heldLogs = nil
        for line in held { logger.log(level: line.level, line.message, metadata: line.metadata) }
        return outcome ?? .done
    }

    /// The body of `attempt`, under the switched identity. Returns nil when done.
    private func locked(target index: Int, identity: FileIdentity?) -> Attempt? {
        let path = targets[index].path
        do {
            try ProviderFileIO.makeDirectories(ProviderFileIO.parentDirectory(of: path), mode: Self.newDirectoryMode)
        } catch {
            fail(index, "\(error)", retry: true)
            return nil
        }
        let lock: ProviderFileLock
        do {
            guard let held = try ProviderFileLock.tryAcquire(path: path + ".lock") else { return .busy }
            lock = held
        } catch {
            fail(index, "\(error)", retry: true)
            return nil
        }
        // From here to the release nothing suspends: the plan is made from what was read
        // under the lock, and the rename lands before anyone else can take it.
        let servers = desired
        let file = ProviderFileIO.resolve(path)
        if let identity, let refusal = Self.foreignFile(path: path, file: file, identity: identity) {
            lock.release()
            // Tried again only when the link or its target changes.
            targets[index].seen = FileStamp.of(file)
            fail(index, refusal, retry: false)
            return nil
        }
        let contents: ProviderFileIO.Contents?
        do {
            contents = try ProviderFileIO.read(file)
        } catch {
            lock.release()
            fail(index, "\(error)", retry: true)
            return nil
        }
        let existing = contents.flatMap { JSONScanner.isBlank($0.bytes) ? nil : $0.bytes }
        let plan: RegistrarPlan
        do {
            switch targets[index].kind {
            case ProviderTarget.openClaw:
                plan = try OpenClawFile.plan(existing: existing, desired: Self.servers(servers))
            default:
                plan = try ProvidersFile.plan(existing: existing, desired: servers, updatedAt: Self.timestamp())
            }
        } catch {
            lock.release()
            targets[index].seen = contents.map { FileStamp($0.info) }
            targets[index].entries = []
            targets[index].snippet =
                targets[index].kind == ProviderTarget.openClaw
                ? OpenClawFile.snippet(Self.servers(servers), path: path) : nil
            fail(index, "\(path): \(error.description)", retry: false)
            return nil
        }
        if let bytes = plan.bytes {
            let mode = contents.map { $0.info.st_mode & 0o7777 } ?? Self.newFileMode
            // Root writing an app's file keeps it the app's; anyone else cannot chown anyway.
            let owner = contents.flatMap { getuid() == 0 ? (uid: $0.info.st_uid, gid: $0.info.st_gid) : nil }
            if let identity, let owner, owner.uid == identity.uid, owner.gid != identity.gid {
                // The user's file in another of their groups: as that user a chown to the
                // group may be refused, so the new file is made in that group instead.
                _ = FileIdentity.useGroup(owner.gid)
            }
            do {
                try ProviderFileIO.writeAtomically(bytes, to: file, mode: mode, owner: owner)
            } catch {
                lock.release()
                fail(index, "\(error)", retry: true)
                return nil
            }
            targets[index].lastWrite = Self.now()
            log(
                .info, "provider config updated",
                metadata: ["file": "\(path)", "change": "\(plan.summary ?? "rewritten")"])
        }
        targets[index].seen = FileStamp.of(file)
        lock.release()

        targets[index].entries = plan.entries
        targets[index].snippet = nil
        settle(index, warning: plan.warning, what: "provider config")
        return nil
    }

    /// A pass that reached its target: no retry is due, a recovery or a new warning is
    /// logged once, and the warning (or nothing) is what `status()` shows.
    private func settle(_ index: Int, warning: String?, what: String) {
        let path = targets[index].path
        targets[index].retry = false
        if let previous = targets[index].error, warning == nil {
            log(.info, "\(what) writable again", metadata: ["file": "\(path)", "was": "\(previous)"])
        }
        if let warning, warning != targets[index].error {
            log(.warning, "\(what): \(warning)", metadata: ["file": "\(path)"])
        }
        targets[index].error = warning
    }

    /// Work that may block (SQLite waiting out another process's lock) runs here, one item
    /// at a time, off Swift's cooperative threads.
    private static let blockingQueue = DispatchQueue(label: "agentron.registrar.blocking")

    private static func onBlockingThread<T: Sendable>(
        _ body: @escaping @Sendable () throws(FileIdentity.SwitchFailure) -> T
    ) async -> Result<T, FileIdentity.SwitchFailure> {
        await withCheckedContinuation { continuation in
            blockingQueue.async {
                do throws(FileIdentity.SwitchFailure) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
    }

    /// One pass over the Agentron app's database (Registrar+AgentronApp.swift). The SQLite
    /// work runs as the directory's owner (FileIdentity, which cannot span an await) and may
    /// wait up to AgentronAppDatabase.busyTimeout for the app's lock: so it runs on a thread
    /// of its own, never on one of the few threads every server's supervision shares.
    private func passAgentronApp(_ index: Int) async {
        let path = targets[index].path
        let file = ProviderFileIO.resolve(path)
        defer {
            targets[index].seen = FileStamp.of(file)
            targets[index].seenWAL = FileStamp.of(file + "-wal")
        }
        guard FileStamp.of(file) != nil else {
            // agentron never creates the app's database: the app makes it on its first
            // start, and the poll sees it appear.
            targets[index].present = false
            targets[index].entries = []
            targets[index].error = nil
            targets[index].retry = false
            return
        }
        targets[index].present = true
        let identity = FileIdentity.forWriting(file)
        if let identity, let refusal = Self.foreignFile(path: path, file: file, identity: identity) {
            targets[index].entries = []
            fail(index, refusal, retry: false)
            return
        }
        let servers = Self.servers(desired)
        let outcome: AgentronAppDatabase.Outcome
        switch await Self.onBlockingThread({ () throws(FileIdentity.SwitchFailure) in
            try FileIdentity.run(as: identity) { AgentronAppDatabase.sync(path: path, desired: servers) }
        }) {
        case .success(let result): outcome = result
        case .failure(let error):
            fail(index, "\(path): \(error)", retry: true)
            return
        }
        if let entries = outcome.entries { targets[index].entries = entries }
        if let failure = outcome.failure {
            fail(index, failure, retry: outcome.retry)
            return
        }
        if let summary = outcome.summary {
            targets[index].lastWrite = Self.now()
            log(.info, "Agentron app database updated", metadata: ["file": "\(path)", "change": "\(summary)"])
        }
        settle(index, warning: outcome.warning, what: "Agentron app database")
    }

    /// Why `path` (reached through a link when `file` differs) must not be written as
    /// `identity`: the file there is someone else's. A link to it may have been planted to
    /// make root rewrite it; and a file of another user's in this directory could only be
    /// replaced by one of `identity`'s. Nil when it is the identity's own, or not there yet.
    static func foreignFile(path: String, file: String, identity: FileIdentity) -> String? {
        var info = stat()
        guard stat(file, &info) == 0, info.st_uid != identity.uid else { return nil }
        guard file == path else {
            return "\(path) is a link to \(file), owned by uid \(info.st_uid), not by the directory's owner uid "
                + "\(identity.uid); left untouched"
        }
        return "\(path) is owned by uid \(info.st_uid), not by the directory's owner uid \(identity.uid); "
            + "left untouched: chown it to uid \(identity.uid) for agentron to keep it up to date"
    }

    /// Logs now, or after the pass when the thread is acting as another user.
    private func log(_ level: Logger.Level, _ message: Logger.Message, metadata: Logger.Metadata) {
        if heldLogs != nil {
            heldLogs?.append((level, message, metadata))
        } else {
            logger.log(level: level, message, metadata: metadata)
        }
    }

    /// Records why a target could not be written; logs it once, not on every retry.
    private func fail(_ index: Int, _ message: String, retry: Bool) {
        if targets[index].error != message {
            log(
                .warning,
                "provider config not written: \(message); the servers keep running, agentron tries again when the file changes",
                metadata: ["file": "\(targets[index].path)"])
        }
        targets[index].error = message
        targets[index].retry = retry
    }

    // MARK: Watching

    private func startWatching() {
        guard watcher == nil else { return }
        watcher = Task { [weak self] in
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: Registrar.pollInterval)
                } catch {
                    return
                }
                guard let self else { return }
                await self.poll()
            }
        }
    }

    /// A pass when a file changed since the last one saw it, or a transient failure waits
    /// for another try.
    private func poll() async {
        let due = targets.contains { target in
            let file = ProviderFileIO.resolve(target.path)
            return target.retry || FileStamp.of(file) != target.seen
                || (target.kind == ProviderTarget.agentronApp && FileStamp.of(file + "-wal") != target.seenWAL)
        }
        if due { await runPass() }
    }
}
