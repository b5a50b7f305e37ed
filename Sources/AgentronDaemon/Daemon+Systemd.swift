import AgentronCore
import AgentronSystemd
import Logging
import ServiceLifecycle

/// What Daemon.main calls to work under systemd (issue #6). Every call is harmless when
/// systemd did not start the daemon: the notifier is a no-op, no journal, no passed socket.
enum SystemdIntegration {
    /// sd_notify for this process, or a no-op (read once: NOTIFY_SOCKET does not change).
    static let notifier = SystemdNotifier.current

    /// A journal log handler factory when stderr is the journal (JOURNAL_STREAM matches),
    /// nil to keep plain lines on stderr.
    static func logHandlerFactory(
        environment: [String: String], logLevel: Logger.Level
    ) -> (@Sendable (String) -> any LogHandler)? {
        guard Journal.stderrIsJournal(environment: environment) else { return nil }
        return { label in JournalLogHandler(label: label, logLevel: logLevel) }
    }

    /// READY=1. Call it once the control socket accepts connections, never earlier:
    /// `systemctl start` returns at READY, and clients connect right after.
    static func notifyReady() {
        notifier.ready()
    }

    /// EXTEND_TIMEOUT_USEC: slow startup work (restoring servers) needs `duration` more
    /// before systemd's start timeout fires. Call it again before it runs out.
    static func extendStartup(_ duration: Duration) {
        notifier.extendTimeout(duration)
    }

    /// EXTEND_TIMEOUT_USEC during shutdown: engines still stopping need `duration` more
    /// before systemd's stop timeout fires.
    static func extendStop(_ duration: Duration) {
        notifier.extendTimeout(duration)
    }

    /// The control socket systemd passed (agentrond.socket), or nil to bind the path. Takes
    /// LISTEN_FDS out of the environment either way.
    static func takeListenSocket(environment: [String: String], logger: Logger) -> Int32? {
        let fds = ListenFDs.take(environment: environment)
        guard let fd = fds.first else { return nil }
        guard fds.count == 1, ListenFDs.isListeningUnixStream(fd) else {
            logger.warning(
                "systemd passed \(fds.count) sockets; expected one listening Unix stream socket (agentrond.socket with one ListenStream=); binding the socket path instead"
            )
            return nil
        }
        return fd
    }

    /// The service that reports to systemd; add it last to the ServiceGroup, so it is the
    /// first to hear of a graceful shutdown and sends STOPPING=1 before engines stop.
    static func service(registry: ServerRegistry, logger: Logger) -> SystemdService {
        SystemdService(
            registry: registry, notifier: notifier, watchdogInterval: SystemdNotifier.watchdogInterval(), logger: logger
        )
    }
}

/// Keeps systemd informed while the daemon runs: WATCHDOG=1 at half of WATCHDOG_USEC,
/// STATUS= whenever the one-line summary changes, STOPPING=1 when graceful shutdown starts.
/// Idle when systemd did not start the daemon.
struct SystemdService: Service {
    let registry: ServerRegistry
    let notifier: SystemdNotifier
    /// Half of WATCHDOG_USEC; nil when systemd expects no pings.
    let watchdogInterval: Duration?
    let logger: Logger

    /// How often the status line is recomputed: `systemctl status` is read by people, a
    /// second late is fine, and the registry round trip is cheap.
    static let statusInterval: Duration = .seconds(1)

    func run() async throws {
        guard notifier.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        if let watchdogInterval {
            logger.debug("systemd watchdog enabled", metadata: ["interval": "\(watchdogInterval)"])
        }
        // Returns when graceful shutdown begins (or on cancellation, the escalation).
        await cancelWhenGracefulShutdown { await report() }
        // The watchdog is off from here on (systemd only watches running units); the stop
        // timeout covers the engines' grace periods.
        notifier.stopping()
        notifier.status("stopping: stopping every engine")
    }

    private func report() async {
        let clock = ContinuousClock()
        let tick = min(Self.statusInterval, watchdogInterval ?? Self.statusInterval)
        var lastStatus: String?
        var nextPing = clock.now
        while !Task.isCancelled {
            // The ping is earned by a round trip through the registry actor and every
            // supervisor: a wedged actor stops the pings and systemd restarts the daemon
            // (KillMode=process keeps the engines for the next one).
            let servers = await registry.list(includeStopped: false)
            let status = SystemdStatus.line(states: servers.map(\.state))
            if status != lastStatus {
                notifier.status(status)
                lastStatus = status
            }
            if let watchdogInterval, clock.now >= nextPing {
                notifier.watchdog()
                nextPing = clock.now.advanced(by: watchdogInterval)
            }
            do { try await Task.sleep(for: tick) } catch { return }
        }
    }
}
