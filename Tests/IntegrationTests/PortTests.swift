import Foundation
import Testing

/// Issue #10: an auto port goes to one server only, and an engine that still loses its
/// port (taken between the daemon's pick and the engine's bind) is started on another.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct PortTests {
    @Test func anAutoPortTakenBeforeTheEngineBindsIsPickedAgain() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // The FakeEngine, like vLLM, listens only once loaded: 2 s in which to take its port.
        let up = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--name", "moved", "--detach", "--env", "FAKE_LOAD_SECONDS=2",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let port = try #require(try await Self.pickedPort(harness))
        let thief = try #require(TCPListener(port: port), "could not take port \(port) first")
        defer { thief.close() }

        let wait = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--name", "moved", "--env", "FAKE_LOAD_SECONDS=2",
        ])
        #expect(wait.code == 0, "the start moves to another port: \(wait.stderr)")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "ready")
        let now = try #require(server["port"] as? Int)
        #expect(now != port)
        let logs = try await harness.run(["logs", "moved"])
        #expect(logs.stdout.contains("port \(port) was taken before the engine could bind it"), "\(logs.stdout)")
        _ = try await harness.run(["down", "moved"])
    }

    /// Another program binds the engine's port first and answers like the engine would:
    /// it must not make the server ready, nor get a probe (which carries the API key).
    @Test func aListenerOutsideTheEnginesTreeIsNotTakenForTheEngine() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--name", "stolen", "--detach",
            "--env", "FAKE_LOAD_SECONDS=3", "--env", "VLLM_API_KEY=sk-never-sent-1234",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let port = try #require(try await Self.pickedPort(harness))

        // The impostor: a FakeEngine serving the same name, started by the test.
        let impostor = Process()
        impostor.executableURL = harness.fakeBin.appendingPathComponent("vllm")
        impostor.arguments = [
            "serve", "org/m", "--host", "127.0.0.1", "--port", "\(port)", "--served-model-name", "stolen",
        ]
        var environment = harness.environment
        environment["FAKE_LOAD_SECONDS"] = "0"
        impostor.environment = environment
        let log = harness.home.appendingPathComponent("impostor.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        impostor.standardOutput = try FileHandle(forWritingTo: log)
        impostor.standardError = try FileHandle(forWritingTo: log)
        try impostor.run()
        harness.track(impostor.processIdentifier)
        defer { kill(impostor.processIdentifier, SIGKILL) }

        let wait = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--name", "stolen", "--env", "FAKE_LOAD_SECONDS=3", "--env",
            "VLLM_API_KEY=sk-never-sent-1234",
        ])
        #expect(wait.code == 0, "\(wait.stderr)")
        let server = try #require(try await harness.servers().first)
        #expect(server["state"] as? String == "ready")
        #expect(server["port"] as? Int != port, "ready on the impostor's port")
        let seen = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(!seen.contains("GET /health") && !seen.contains("GET /v1/models"), "the impostor was probed: \(seen)")
        let inspect = try await harness.run(["inspect", "stolen", "--json"])
        #expect(inspect.stdout.contains("not by the engine"), "the refused probe is in the history")
        _ = try await harness.run(["down", "stolen"])
    }

    @Test func manySimultaneousAutoPortStartsGetDistinctPorts() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        // A narrow range makes a shared port likely if the table did not hold what it gave.
        try await harness.startDaemon(environment: ["AGENTRON_AUTO_PORTS": "31700-31760"])
        for round in 0..<2 {
            let names = (0..<16).map { "p\(round)-\($0)" }
            try await withThrowingTaskGroup(of: Harness.Result.self) { group in
                for name in names {
                    group.addTask {
                        try await harness.run([
                            "up", "org/m", "--engine", "vllm", "--name", name, "--env", "FAKE_LOAD_SECONDS=0.5",
                        ])
                    }
                }
                for try await result in group { #expect(result.code == 0, "\(result.stderr)") }
            }
            let servers = try await harness.servers()
            let ports = servers.compactMap { $0["port"] as? Int }
            #expect(servers.count == names.count)
            #expect(
                servers.allSatisfy { $0["state"] as? String == "ready" },
                "\(servers.map { "\($0["name"] ?? "") \($0["state"] ?? "") \($0["reason"] ?? "")" })")
            #expect(Set(ports).count == ports.count, "one port for two servers: \(ports.sorted())")
            #expect(ports.allSatisfy { (31700...31760).contains($0) })
            let engines = harness.engineProcesses()
            #expect(!engines.isEmpty, "the engine's processes are found")
            #expect(try await harness.run(["down", "--all"]).code == 0)
            #expect(await Harness.waitGone(engines).isEmpty)
        }
    }
}

extension PortTests {
    /// The port the daemon picked for the only server, once it shows in `ps`.
    static func pickedPort(_ harness: Harness) async throws -> Int? {
        for _ in 0..<100 {
            if let port = try await harness.servers().first?["port"] as? Int { return port }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

/// A listening TCP socket on 127.0.0.1:port, closed by `close()`.
struct TCPListener {
    let fd: Int32

    init?(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            Glibc.close(fd)
            return nil
        }
    }

    func close() { Glibc.close(fd) }
}
