import AgentronHTTP
import Foundation
import Testing

/// An Ollama already answering on the port (the system service, say) is reported as such,
/// and `--adopt` uses it instead of starting another, never stopping it (issue #5).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct OllamaAdoptTests {
    @Test func aRunningOllamaIsReportedAndAdoptedButNeverStopped() async throws {
        let harness = try OllamaEngineTests.makeHarness()
        defer { harness.shutdown() }
        try await harness.startDaemon()

        // "The system service": an Ollama agentron did not start, on a free port.
        let port = try #require(Harness.freePort())
        let service = Process()
        service.executableURL = harness.fakeBin.appendingPathComponent("ollama")
        service.arguments = ["serve"]
        service.environment = harness.environment.merging([
            "OLLAMA_HOST": "127.0.0.1:\(port)", "FAKE_PULL_SECONDS": "0.1",
        ]) { $1 }
        service.standardOutput = FileHandle.nullDevice
        service.standardError = FileHandle.nullDevice
        try service.run()
        harness.track(service.processIdentifier)
        defer {
            // SIGTERM first: Ollama stops its runners on SIGTERM, while a SIGKILL leaves
            // them running as orphans (the leak scripts/test once found, issue #10). Any
            // runner still there after the grace is killed by pid.
            let runners = Self.children(of: service.processIdentifier)
            kill(service.processIdentifier, SIGTERM)
            var deadline = Date().addingTimeInterval(8)
            while service.isRunning, Date() < deadline { usleep(10_000) }
            if service.isRunning { kill(service.processIdentifier, SIGKILL) }
            for pid in runners + Self.children(of: service.processIdentifier) where Harness.isAlive(pid) {
                kill(pid, SIGKILL)
            }
            deadline = Date().addingTimeInterval(5)
            while service.isRunning, Date() < deadline { usleep(10_000) }
        }
        var answering = false
        for _ in 0..<200 where !answering {
            answering =
                (try? await HTTPClient.shared.execute(
                    HTTPRequest(url: "http://127.0.0.1:\(port)/", timeout: .seconds(1))))?.status == 200
            if !answering { try await Task.sleep(for: .milliseconds(20)) }
        }
        try #require(answering)

        let refused = try await harness.run(["up", "llama3.2:1b", "--engine", "ollama", "--port", String(port)])
        #expect(refused.code == 4)
        #expect(
            refused.stderr.contains("already in use by pid \(service.processIdentifier) (ollama)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("add --adopt"))

        let adopted = try await harness.run([
            "up", "llama3.2:1b", "--engine", "ollama", "--port", String(port), "--adopt", "--name", "sys",
        ])
        #expect(adopted.code == 0, "\(adopted.stderr)")
        let server = try #require(try await harness.servers().first { $0["name"] as? String == "sys" })
        #expect(server["state"] as? String == "ready")
        #expect(server["pid"] == nil, "not a process of agentron's")
        #expect(server["endpoint"] as? String == "http://127.0.0.1:\(port)")
        // Pulled and loaded through the adopted Ollama.
        let ps = try await HTTPClient.shared.execute(
            HTTPRequest(url: "http://127.0.0.1:\(port)/api/ps", timeout: .seconds(5)))
        #expect(ps.bodyText.contains("llama3.2:1b"))

        #expect(try await harness.run(["down", "sys"]).code == 0)
        #expect(service.isRunning, "down never stops an adopted engine")
        #expect(
            try await harness.servers(all: true).first { $0["name"] as? String == "sys" }?["state"] as? String
                == "stopped")
    }

    /// Live children of `pid`, from /proc.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

}
