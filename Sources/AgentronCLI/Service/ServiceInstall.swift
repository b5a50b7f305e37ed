import AgentronClient
import AgentronConfig
import AgentronCore
import ArgumentParser
import Glibc

struct ServiceInstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install and start the systemd unit for agentrond.",
        discussion: """
            Writes agentrond.service (with --socket also agentrond.socket) to
            /etc/systemd/system, or with --user to ~/.config/systemd/user. ExecStart points
            at the agentrond next to this agentron. Where systemd runs, it then reloads
            systemd, enables and starts the unit, and checks that the daemon answers.
            --dry-run prints the files and the commands and changes nothing.
            """
    )

    @Flag(help: "Install a user unit (systemctl --user) instead of the system unit.")
    var user = false

    @Flag(help: "Print the unit files and the commands instead of running them.")
    var dryRun = false

    @Flag(
        help:
            "Also install agentrond.socket: systemd holds the control socket, so clients can connect while agentrond restarts."
    )
    var socket = false

    @Option(help: ArgumentHelp("The agentrond to run (default: the one next to this agentron).", valueName: "path"))
    var agentrond: String?

    func validate() throws {
        if let agentrond, !agentrond.hasPrefix("/") {
            throw ValidationError(
                "--agentrond must be an absolute path (systemd runs ExecStart without a working directory); got \(agentrond)"
            )
        }
    }

    func run() async throws {
        let scope = ServiceScope(user: user)
        guard let daemon = agentrond ?? Self.siblingDaemon() else {
            throw fail("cannot find this agentron's own path (/proc/self/exe); pass --agentrond /path/to/agentrond")
        }
        if access(daemon, X_OK) != 0 {
            let message =
                "\(daemon) is not an executable agentrond; build it (scripts/setup) or pass --agentrond /path/to/agentrond"
            if !dryRun { throw fail(message) }
            Output.note("warning: \(message)")
        }
        if daemon.contains("/.build/") {
            Output.note(
                "note: \(daemon) is inside a build directory; the unit breaks when it is rebuilt or cleaned. Install a release build (docs/systemd.md) for boot-time use."
            )
        }

        var files = [(path: scope.servicePath, text: UnitTemplates.service(user: user, agentrond: daemon))]
        if socket { files.append((scope.socketUnitPath, UnitTemplates.socket(user: user))) }
        let units = socket ? [ServiceScope.socketName, ServiceScope.serviceName] : [ServiceScope.serviceName]
        let commands = [scope.systemctl + ["daemon-reload"], scope.systemctl + ["enable", "--now"] + units]
        let systemd = ServiceScope.systemdIsRunning

        if dryRun {
            var text = ""
            for file in files { text += "# \(file.path)\n\(file.text)\n" }
            text += "# then\n" + commands.map { $0.joined(separator: " ") + "\n" }.joined()
            Output.writeStdout(Array(text.utf8))
            if !systemd {
                Output.note(
                    "note: systemd is not running here; a real install would write the files and not run the commands")
            }
            return
        }

        if !user && geteuid() != 0 {
            throw fail(
                "installing the system unit needs root: run `sudo agentron service install`, or install a user unit with --user"
            )
        }
        for file in files {
            do throws(ServiceFileError) {
                try writeFileAtomically(file.text, to: file.path)
            } catch {
                throw fail("\(error)")
            }
            say("wrote \(file.path)")
        }
        guard systemd else {
            say(
                "systemd is not running on this machine (no /run/systemd/system): the unit is installed but not enabled or started"
            )
            say(
                "where systemd runs, start it with: "
                    + commands.map { $0.joined(separator: " ") }.joined(separator: " && "))
            // Nothing started a daemon here; one may run anyway (started by hand or by the CLI).
            switch await scope.ping(timeout: .zero) {
            case .success(let info): say(scope.describe(.success(info)))
            case .failure:
                say(
                    "no agentrond answers on \(scope.controlSocket): nothing started one (run `agentrond`, or the commands above where systemd runs)"
                )
            }
            return
        }
        for command in commands {
            let outcome = Subprocess.run(command)
            let line = command.joined(separator: " ")
            guard outcome.succeeded else {
                let detail = outcome.output.split(separator: "\n").joined(separator: "\n  ")
                throw fail(
                    "\(line) failed (exit \(outcome.status)):\n  \(detail)\nsee: systemctl\(user ? " --user" : "") status agentrond; \(scope.journalctl)"
                )
            }
            say("ran \(line)")
        }
        let answer = await scope.ping()
        say(scope.describe(answer))
        if case .failure = answer { throw ExitCode(1) }
        if user {
            say(
                "to start it at boot without logging in: loginctl enable-linger \(ProcessEnvironment.current["USER"] ?? "$USER")"
            )
        }
    }

    /// What this command did, one line each: its result, so stdout.
    private func say(_ line: String) {
        Output.writeStdout(Array((line + "\n").utf8))
    }

    /// The agentrond next to the running agentron (an installed or built pair).
    static func siblingDaemon() -> String? {
        guard let exe = AgentronPaths.currentExecutablePath(), let slash = exe.lastIndex(of: "/") else { return nil }
        return String(exe[..<slash]) + "/agentrond"
    }
}
