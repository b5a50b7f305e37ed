import AgentronClient
import AgentronCore
import ArgumentParser
import Glibc

struct ServiceStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show whether the agentrond unit is installed, enabled and running, and whether the daemon answers."
    )

    @Flag(help: "Look at the user unit (systemctl --user) instead of the system unit.")
    var user = false

    @Flag(help: "Print JSON instead of lines.")
    var json = false

    /// The status is read at once; a daemon that does not answer in this long is reported
    /// as not answering.
    static let pingTimeout: Duration = .seconds(3)

    struct Report: Encodable {
        struct UnitFile: Encodable {
            var path: String
            var installed: Bool
            /// The ExecStart= value of the installed file.
            var execStart: String?
        }
        struct Manager: Encodable {
            var running: Bool
            /// `systemctl is-enabled` and `is-active` answers, absent without systemd.
            var enabled: String?
            var active: String?
            var socketActive: String?
        }
        struct Daemon: Encodable {
            var socket: String
            var answering: Bool
            var version: String?
            var pid: Int32?
            var error: String?
        }
        var scope: String
        var service: UnitFile
        var socket: UnitFile
        var systemd: Manager
        var daemon: Daemon
    }

    func run() async throws {
        let scope = ServiceScope(user: user)
        let service = Self.unitFile(scope.servicePath)
        let socket = Self.unitFile(scope.socketUnitPath)
        var manager = Report.Manager(running: ServiceScope.systemdIsRunning)
        if manager.running {
            manager.enabled = Self.ask(scope.systemctl + ["is-enabled", ServiceScope.serviceName])
            manager.active = Self.ask(scope.systemctl + ["is-active", ServiceScope.serviceName])
            if socket.installed {
                manager.socketActive = Self.ask(scope.systemctl + ["is-active", ServiceScope.socketName])
            }
        }
        let answer = await scope.ping(timeout: Self.pingTimeout)
        var daemon = Report.Daemon(socket: scope.controlSocket, answering: false)
        switch answer {
        case .success(let info):
            daemon.answering = true
            daemon.version = info.version
            daemon.pid = info.pid
        case .failure(let error):
            daemon.error = "\(error)"
        }
        let report = Report(scope: scope.name, service: service, socket: socket, systemd: manager, daemon: daemon)
        if json {
            Output.json(report)
            return
        }
        var lines = [
            "unit      \(service.path) (\(service.installed ? "installed" : "not installed"))"
        ]
        if let execStart = service.execStart { lines.append("execstart \(execStart)") }
        if socket.installed { lines.append("socket    \(socket.path) (installed)") }
        if manager.running {
            lines.append(
                "systemd   \(manager.enabled ?? "unknown"), \(manager.active ?? "unknown")"
                    + (manager.socketActive.map { "; socket \($0)" } ?? ""))
        } else {
            lines.append("systemd   not running on this machine (no /run/systemd/system)")
        }
        lines.append("daemon    \(scope.describe(answer))")
        Output.writeStdout(Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    static func unitFile(_ path: String) -> Report.UnitFile {
        guard let text = readText(path) else { return Report.UnitFile(path: path, installed: false) }
        let execStart = text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }.map {
            String($0.dropFirst("ExecStart=".count))
        }
        return Report.UnitFile(path: path, installed: true, execStart: execStart)
    }

    /// The first line systemctl prints ("enabled", "inactive", ...), whatever its exit status.
    static func ask(_ command: [String]) -> String {
        let outcome = Subprocess.run(command)
        let first = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
        return first.isEmpty ? "unknown (exit \(outcome.status))" : first
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
