/// The systemd units, in one place: `agentron service install` renders these, and
/// `units/*.service|socket` hold the same text for packagers (an integration test checks
/// that they match; edit both together). ExecStart is rewritten to the agentrond being
/// installed.
enum UnitTemplates {
    /// The ExecStart line as the templates carry it.
    static let templateExecStart = "ExecStart=/usr/local/bin/agentrond"

    /// units/agentrond.service
    static let systemService = #"""
    # agentrond under the system manager: the agentron supervisor for local LLM inference
    # servers, started at boot. `agentron service install` writes this file with ExecStart
    # pointing at its own agentrond. See docs/systemd.md.

    [Unit]
    Description=agentron supervisor for local LLM inference servers
    # Engines bind ports and some download weights at start. network-online.target is only
    # reached when a unit pulls it in, hence the Wants=.
    Wants=network-online.target
    After=network-online.target
    # An engine started before the NVIDIA driver is up silently runs on the CPU. After= on a
    # unit that does not exist is a no-op, and there is no Wants=, so a machine without
    # NVIDIA does not get a failed dependency.
    After=nvidia-persistenced.service

    [Service]
    # agentrond sends READY=1 once its control socket accepts connections, not at fork.
    Type=notify
    # Only agentrond itself may notify; an engine it started never speaks for the unit.
    NotifyAccess=main
    ExecStart=/usr/local/bin/agentrond
    # agentrond pings at half of this, after a round trip through its server registry:
    # a daemon that hangs is restarted.
    WatchdogSec=30s
    Restart=on-failure
    RestartSec=2s
    # On SIGTERM agentrond stops every engine itself, in parallel; vLLM and TGI may need
    # their full 90 s grace, so give the daemon more than that before systemd steps in.
    TimeoutStopSec=120s
    # Signals go to agentrond only, never to the engines (minutes to load). On a stop it
    # stops them itself. After a crash or a watchdog kill they keep running and the next
    # agentrond adopts them again (live restore); with AGENTRON_LIVE_RESTORE=1 (a drop-in
    # Environment= line) a planned restart, e.g. for an upgrade, keeps them too.
    KillMode=process
    # agentrond may put each engine in its own cgroup below the unit's, to stop whole trees.
    Delegate=yes
    # /run/agentron holds the control socket.
    RuntimeDirectory=agentron
    # Keep /run/agentron across restarts: the socket unit's socket lives in it.
    RuntimeDirectoryPreserve=yes
    # /var/lib/agentron: what runs (for live restore), engine logs.
    StateDirectory=agentron
    StateDirectoryMode=0700
    # /etc/agentron: profiles and the shared provider config.
    ConfigurationDirectory=agentron
    # Engines open many files at once (weight shards, CUDA libraries, sockets).
    LimitNOFILE=65536

    [Install]
    WantedBy=multi-user.target

    """#

    /// units/agentrond-user.service
    static let userService = #"""
    # agentrond under a user's manager: the agentron supervisor for local LLM inference
    # servers, started at login (or at boot with `loginctl enable-linger`).
    # `agentron service install --user` writes this file with ExecStart pointing at its own
    # agentrond. See docs/systemd.md.

    [Unit]
    Description=agentron supervisor for local LLM inference servers
    # No ordering on network-online.target or nvidia-persistenced.service: a user manager
    # cannot see system units. Use the system unit where boot order matters.

    [Service]
    # agentrond sends READY=1 once its control socket accepts connections, not at fork.
    Type=notify
    # Only agentrond itself may notify; an engine it started never speaks for the unit.
    NotifyAccess=main
    ExecStart=/usr/local/bin/agentrond
    # agentrond pings at half of this, after a round trip through its server registry:
    # a daemon that hangs is restarted.
    WatchdogSec=30s
    Restart=on-failure
    RestartSec=2s
    # On SIGTERM agentrond stops every engine itself, in parallel; vLLM and TGI may need
    # their full 90 s grace, so give the daemon more than that before systemd steps in.
    TimeoutStopSec=120s
    # Signals go to agentrond only, never to the engines (minutes to load). On a stop it
    # stops them itself. After a crash or a watchdog kill they keep running and the next
    # agentrond adopts them again (live restore); with AGENTRON_LIVE_RESTORE=1 (a drop-in
    # Environment= line) a planned restart, e.g. for an upgrade, keeps them too.
    KillMode=process
    # agentrond may put each engine in its own cgroup below the unit's, to stop whole trees.
    Delegate=yes
    # %t/agentron ($XDG_RUNTIME_DIR/agentron) holds the control socket, where the CLI
    # looks for it.
    RuntimeDirectory=agentron
    RuntimeDirectoryMode=0700
    # Keep it across restarts: the socket unit's socket lives in it.
    RuntimeDirectoryPreserve=yes
    # ~/.config/agentron: profiles and the shared provider config.
    ConfigurationDirectory=agentron
    # No StateDirectory=: for user units older systemd puts it under ~/.config. agentrond
    # creates $XDG_STATE_HOME/agentron (~/.local/state/agentron) itself, the same place a
    # daemon started by the CLI uses.
    # Engines open many files at once (weight shards, CUDA libraries, sockets).
    LimitNOFILE=65536

    [Install]
    WantedBy=default.target

    """#

    /// units/agentrond.socket
    static let systemSocket = #"""
    # The control socket of the system agentrond, held by systemd (socket activation):
    # clients can connect while agentrond (re)starts, and the first connection starts it.
    # `agentron service install --socket` writes this file. See docs/systemd.md.

    [Unit]
    Description=agentron control socket

    [Socket]
    # The path agentron looks for as root (docs/architecture.md).
    ListenStream=/run/agentron/agentron.sock
    # Root and the socket's group may drive the daemon; add SocketGroup= in a drop-in
    # (systemctl edit agentrond.socket) to let a group of users in.
    SocketMode=0660

    [Install]
    WantedBy=sockets.target

    """#

    /// units/agentrond-user.socket
    static let userSocket = #"""
    # The control socket of a user's agentrond, held by the user's systemd (socket
    # activation): clients can connect while agentrond (re)starts, and the first connection
    # starts it. `agentron service install --user --socket` writes this file as
    # agentrond.socket. See docs/systemd.md.

    [Unit]
    Description=agentron control socket

    [Socket]
    # $XDG_RUNTIME_DIR/agentron/agentron.sock: the path agentron looks for (docs/architecture.md).
    ListenStream=%t/agentron/agentron.sock
    # Only this user may drive the daemon.
    SocketMode=0600
    DirectoryMode=0700

    [Install]
    WantedBy=sockets.target

    """#

    static func service(user: Bool, agentrond: String) -> String {
        let template = user ? userService : systemService
        return template.replacing(templateExecStart, with: "ExecStart=" + execStartValue(agentrond))
    }

    static func socket(user: Bool) -> String {
        user ? userSocket : systemSocket
    }

    /// A path as systemd reads it in ExecStart=: `%` starts a specifier and `$` a variable,
    /// so both are doubled; a path with spaces or quotes is quoted, with `\` and `"` escaped.
    static func execStartValue(_ path: String) -> String {
        var escaped = ""
        var needsQuotes = false
        for character in path {
            switch character {
            case "%": escaped += "%%"
            case "$": escaped += "$$"
            case "\\": escaped += "\\\\"; needsQuotes = true
            case "\"": escaped += "\\\""; needsQuotes = true
            case "'": escaped += "'"; needsQuotes = true
            default:
                if character.isWhitespace { needsQuotes = true }
                escaped.append(character)
            }
        }
        return needsQuotes ? "\"" + escaped + "\"" : escaped
    }
}
