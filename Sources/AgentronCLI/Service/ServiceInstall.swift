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

            The system unit: creates the group `agentron` when missing. Its members may use
            the daemon's socket (0660) without sudo, which makes them root-equivalent, like
            the docker group: sudo usermod -aG agentron <user>.
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

    @Option(
        name: .customLong("env-file"),
        help: ArgumentHelp(
            "KEY=value lines (HF_TOKEN=..., AGENTRON_GATEWAY=...) for the daemon's environment, copied 0600 to /etc/agentron/agentrond.env (--user: ~/.config/agentron/agentrond.env).",
            valueName: "file"))
    var envFile: String?

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
        if !user, let writable = Self.writableByOthers(daemon) {
            let message =
                "\(writable) can be written by a user other than root, so the system unit would run as root whatever they put at \(daemon); install agentron with scripts/install (to /usr/local), or pass --agentrond with a root-owned path"
            if !dryRun { throw fail(message) }
            Output.note("warning: \(message)")
        }
        if daemon.contains("/.build/") {
            Output.note(
                "note: \(daemon) is inside a build directory; the unit breaks when it is rebuilt or cleaned. Install a release build (docs/systemd.md) for boot-time use."
            )
        }

        var files = [
            (path: scope.servicePath, text: UnitTemplates.service(user: user, agentrond: daemon), mode: mode_t(0o644))
        ]
        if socket { files.append((scope.socketUnitPath, UnitTemplates.socket(user: user), 0o644)) }
        if let envFile {
            let text: String
            do throws(EnvironmentFileError) { text = try Self.readEnvironmentFile(envFile) } catch {
                throw fail(error)
            }
            files.append((scope.environmentFilePath, text, 0o600))
        }
        let groupCommand = ["groupadd", "--system", ServiceScope.socketGroup]
        let needsGroup = !user && UserDatabase.groupID(named: ServiceScope.socketGroup) == nil
        let units = socket ? [ServiceScope.socketName, ServiceScope.serviceName] : [ServiceScope.serviceName]
        let commands = [scope.systemctl + ["daemon-reload"], scope.systemctl + ["enable", "--now"] + units]
        let systemd = ServiceScope.systemdIsRunning

        if dryRun {
            var text = ""
            for file in files {
                // The environment file holds secrets: its keys are shown, not its values.
                let shown = file.mode == 0o600 ? Self.keysOnly(file.text) : file.text
                text += "# \(file.path)\n\(shown)\n"
            }
            text +=
                "# then\n"
                + ((needsGroup ? [groupCommand] : []) + commands).map { $0.joined(separator: " ") + "\n" }.joined()
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
                try writeFileAtomically(file.text, to: file.path, mode: file.mode)
            } catch {
                throw fail(error)
            }
            say("wrote \(file.path)")
        }
        if needsGroup {
            // Before the daemon starts: it gives the socket to this group when the group exists.
            let outcome = Subprocess.run(groupCommand)
            guard outcome.succeeded else {
                throw fail(
                    "\(groupCommand.joined(separator: " ")) failed (exit \(outcome.status)): \(outcome.output); create the group yourself and run this again"
                )
            }
            say(
                "created group \(ServiceScope.socketGroup): add users with sudo usermod -aG \(ServiceScope.socketGroup) <user> (root-equivalent, like docker's group)"
            )
        }
        guard systemd else {
            // What `systemctl enable` does offline: the unit starts at the next boot.
            for (link, target) in scope.wantsLinks(socket: socket) {
                do throws(ServiceFileError) { try Self.makeLink(link, to: target) } catch {
                    throw fail("\(error)")
                }
                say("enabled: \(link) -> \(target)")
            }
            say(
                "systemd is not running on this machine (no /run/systemd/system): the unit is installed and enabled, and starts at the next boot"
            )
            say(
                "where systemd runs, start it now with: "
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

    struct EnvironmentFileError: Error, CustomStringConvertible {
        var description: String
    }

    /// The file's lines, checked: blank lines, `#` comments and `KEY=value` (an optional
    /// `export ` prefix is dropped, as systemd does not take it).
    static func readEnvironmentFile(_ path: String) throws(EnvironmentFileError) -> String {
        guard let contents = try? FileIO.read(path) else {
            throw EnvironmentFileError(description: "cannot read --env-file \(path); give a file of KEY=value lines")
        }
        var out: [String] = []
        for (number, raw) in String(decoding: contents.bytes, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        ).enumerated() {
            var line = String(raw).trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") {
                out.append(line)
                continue
            }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimmingSpaces }
            guard let equals = line.firstIndex(of: "="), Profile.isEnvironmentName(String(line[..<equals])) else {
                throw EnvironmentFileError(
                    description:
                        "\(path):\(number + 1): not KEY=value (a name of letters, digits and _, then =); fix the line")
            }
            out.append(line)
        }
        while out.last == "" { out.removeLast() }
        return out.joined(separator: "\n") + "\n"
    }

    /// `KEY=…` for every assignment: what --dry-run shows of a file of secrets.
    static func keysOnly(_ text: String) -> String {
        text.split(separator: "\n").map { line in
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { return String(line) }
            return line[...equals] + "…"
        }.joined(separator: "\n") + "\n"
    }

    /// A symlink at `link` to `target` (replacing one that is there), its directory made.
    static func makeLink(_ link: String, to target: String) throws(ServiceFileError) {
        do { try FileIO.makeDirectories(FileIO.parentDirectory(of: link), mode: 0o755) } catch {
            throw ServiceFileError(path: error.path, action: error.step, errno: error.code)
        }
        unlink(link)
        guard symlink(target, link) == 0 else { throw ServiceFileError(path: link, action: "link", errno: errno) }
    }

    /// The first of `path` and its parent directories that a user other than root could
    /// change (not owned by root, or writable by group or others); nil when none.
    static func writableByOthers(_ path: String) -> String? {
        var current = path
        while true {
            var info = stat()
            if stat(current, &info) == 0, info.st_uid != 0 || info.st_mode & 0o022 != 0 {
                // The sticky /tmp lets others write, but not replace what root owns in it.
                let sticky = info.st_mode & S_ISVTX != 0 && current != path
                if !sticky { return current }
            }
            guard current != "/", !current.isEmpty else { return nil }
            current = FileIO.parentDirectory(of: current)
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
