import AgentronCore
import ArgumentParser
import Glibc

struct ServiceUninstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uninstall",
        abstract: "Stop, disable and remove the systemd unit for agentrond.",
        discussion: """
            Stopping the unit stops agentrond, and agentrond stops every engine it runs
            before it exits. Profiles, state and logs are kept.
            """
    )

    @Flag(help: "Remove the user unit (systemctl --user) instead of the system unit.")
    var user = false

    @Flag(help: "Print what would be removed and run instead of doing it.")
    var dryRun = false

    func run() async throws {
        let scope = ServiceScope(user: user)
        let files = [scope.socketUnitPath, scope.servicePath].filter(ServiceScope.fileExists)
        guard !files.isEmpty else {
            Output.note("no agentrond unit is installed in \(scope.unitDirectory): nothing to remove")
            return
        }
        // The socket first: otherwise a connection could start the service again.
        let units = files.map { $0 == scope.socketUnitPath ? ServiceScope.socketName : ServiceScope.serviceName }
        let disable = scope.systemctl + ["disable", "--now"] + units
        let reload = scope.systemctl + ["daemon-reload"]
        let systemd = ServiceScope.systemdIsRunning

        if dryRun {
            var text = ""
            if systemd { text += disable.joined(separator: " ") + "\n" }
            text += files.map { "rm \($0)\n" }.joined()
            if systemd { text += reload.joined(separator: " ") + "\n" }
            Output.writeStdout(Array(text.utf8))
            return
        }
        if !user && geteuid() != 0 {
            throw fail("removing the system unit needs root: run `sudo agentron service uninstall`")
        }
        if systemd {
            let outcome = Subprocess.run(disable)
            guard outcome.succeeded else {
                let detail = outcome.output.split(separator: "\n").joined(separator: "\n  ")
                throw fail("\(disable.joined(separator: " ")) failed (exit \(outcome.status)):\n  \(detail)")
            }
            say("ran \(disable.joined(separator: " ")) (agentrond stopped its engines)")
        } else {
            say("systemd is not running on this machine: only removing the files")
        }
        // The links an offline install made (systemctl disable removes its own).
        for link in scope.allWantsLinks where unlink(link) == 0 {
            say("removed \(link)")
        }
        for file in files {
            guard unlink(file) == 0 || errno == ENOENT else {
                throw fail("cannot remove \(file): \(String(cString: strerror(errno)))")
            }
            say("removed \(file)")
        }
        if systemd {
            let outcome = Subprocess.run(reload)
            if !outcome.succeeded {
                Output.note("warning: \(reload.joined(separator: " ")) failed: \(outcome.output)")
            } else {
                say("ran \(reload.joined(separator: " "))")
            }
        }
    }

    private func say(_ line: String) {
        Output.writeStdout(Array((line + "\n").utf8))
    }
}
