import AgentronClient
import AgentronCore
import ArgumentParser
import Glibc

struct ServerInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a server in detail: resolved profile (secrets redacted), state history, last exit, last probes."
    )

    @Argument(help: "The server's name.", completion: Completion.servers)
    var name: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let info: ServerInfo
        do {
            info = try await CLIContext().client.inspect(name)
        } catch {
            throw fail(error)
        }
        if json {
            Output.json(info)
            return
        }
        var out = ""
        out += "name:        \(info.name)\n"
        out += "state:       \(info.state.rawValue)\(info.reason.map { " (\($0))" } ?? "")\n"
        out += "engine:      \(info.engine.rawValue)\n"
        out += "model:       \(info.model) (served as \(info.servedModel))\n"
        out += "endpoint:    \(info.endpoint ?? "-")\n"
        out += "pid:         \(info.pid.map(String.init) ?? "-")\n"
        out += "restarts:    \(info.restarts)\n"
        out += "last exit:   \(info.lastExit.map { "\($0)" } ?? "-")\n"
        if let history = info.history, !history.isEmpty {
            out += "history:\n"
            for change in history {
                out += "  \(timestamp(change.at))  \(change.state.rawValue)\(change.reason.map { ": \($0)" } ?? "")\n"
            }
        }
        if let probes = info.probes, !probes.isEmpty {
            out += "probes:\n"
            for probe in probes.suffix(10) {
                out += "  \(timestamp(probe.at))  \(probe.passed ? "pass" : "fail")  \(probe.detail)\n"
            }
        }
        if let profile = info.profile {
            out += "profile:\n"
            for line in profile.yamlText.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
                out += "  \(line)\n"
            }
        }
        Output.writeStdout(Array(out.utf8))
    }

    private func timestamp(_ unixTime: Double) -> String {
        var seconds = time_t(unixTime)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
