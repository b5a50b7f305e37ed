import AgentronConfig
import AgentronCore
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

/// Issue #10: concurrent starts of one new name must not create two supervisors (the
/// registry would know one, and the other's engine would outlive `down --all`).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ServerRegistryTests {
    @Test func concurrentStartsOfOneNewNameMakeOneSupervisor() async throws {
        let root = NSTemporaryDirectory() + "agentron-registry-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let paths = AgentronPaths(
            runtimeDirectory: root + "/run", stateDirectory: root + "/state", configDirectory: root + "/config",
            profileDirectories: [])
        try FileManager.default.createDirectory(atPath: paths.logDirectory, withIntermediateDirectories: true)
        let logger = Logger(label: "test")
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: root + "/config/providers.json"), logger: logger)
        let registry = ServerRegistry(
            paths: paths, daemonEnvironment: ["PATH": "/usr/bin:/bin"], cgroups: nil, registrar: registrar,
            instance: "test", logger: logger)
        // A marker in argv finds every engine this test started, known to the registry or not.
        let marker = "\(Int.random(in: 100_000...999_999)).5"
        func profile(_ name: String, port: Int) -> Profile {
            var profile = Profile(name: name, engine: .command, model: "m", port: .fixed(port))
            profile.command = ["sleep", marker]
            profile.stopTimeout = .seconds(2)
            return profile
        }
        defer { for pid in Self.processes(containing: marker) { kill(pid, SIGKILL) } }

        // Another server, so the start's port check has a supervisor to ask (a suspension).
        _ = try await registry.start(profile("first", port: 40_001))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<24 {
                group.addTask { _ = try? await registry.start(profile("twin", port: 40_002)) }
            }
        }
        #expect(await registry.list(includeStopped: true).map(\.name) == ["first", "twin"])
        let spawned = Self.processes(containing: marker)
        #expect(spawned.count == 2, "one engine per server: \(spawned)")

        await registry.shutdownAll()
        var left = Self.processes(containing: marker)
        let deadline = Date().addingTimeInterval(5)
        while !left.isEmpty, Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
            left = Self.processes(containing: marker)
        }
        #expect(left.isEmpty, "engines the registry did not know: \(left)")
    }

    /// A user daemon leaves the system's autostart profiles to the system daemon.
    @Test func onlyTheSystemDaemonAutostartsSystemProfiles() {
        #expect(ServerRegistry.mayAutostart(profileAt: "/etc/agentron/profiles/llama.yaml", daemonUID: 0))
        #expect(!ServerRegistry.mayAutostart(profileAt: "/etc/agentron/profiles/llama.yaml", daemonUID: 1000))
        #expect(ServerRegistry.mayAutostart(profileAt: "/home/u/.config/agentron/profiles/llama.yaml", daemonUID: 1000))
        #expect(ServerRegistry.mayAutostart(profileAt: "/etc/agentron/profiles-extra/x.yaml", daemonUID: 1000))
    }

    /// Live processes whose argv contains `text`.
    static func processes(containing text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z")
            else { return nil }
            return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text) ? pid : nil
        }
    }
}
