import Foundation
import Testing

/// A ready server appears in the shared provider config, a stopped one disappears, and the
/// entries agentron does not own stay byte-for-byte (issue #4), through the real daemon and
/// CLI with the FakeEngine as `vllm`.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RegistrationTests {
    /// A file the app wrote before agentron ever ran: its own entry and its own top-level key.
    static let foreign = """
        {
          "app": {"theme": "dark"},
          "providers": [
            {"id": "cloud", "provider": "openai", "endpoint": "https://api.example.com", "model": "gpt-4o"}
          ],
          "version": 1
        }

        """

    func providersFile(_ harness: Harness) -> URL {
        harness.home.appendingPathComponent("config/providers.json")
    }

    func entries(_ harness: Harness) throws -> [[String: Any]] {
        let data = try Data(contentsOf: providersFile(harness))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(object["providers"] as? [[String: Any]])
    }

    @Test func upRegistersDownUnregistersAndForeignEntriesStayByteForByte() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let file = providersFile(harness)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(Self.foreign.utf8).write(to: file)
        let foreignElement =
            #"{"id": "cloud", "provider": "openai", "endpoint": "https://api.example.com", "model": "gpt-4o"}"#
        try await harness.startDaemon()

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "reg"])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let server = try #require(try await harness.servers().first { $0["name"] as? String == "reg" })
        let endpoint = try #require(server["endpoint"] as? String)

        // Registration follows readiness; give the daemon a moment if it writes after replying.
        var registered: [String: Any]?
        let deadline = Date().addingTimeInterval(10)
        while registered == nil, Date() < deadline {
            registered = try? entries(harness).first { $0["id"] as? String == "reg" }
            if registered == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let entry = try #require(registered, "no entry for reg in \(file.path): \(harness.daemonLog)")
        #expect(entry["provider"] as? String == "vllm")
        #expect(entry["model"] as? String == "reg")
        #expect(entry["endpoint"] as? String == endpoint)
        #expect(entry["managedBy"] as? String == "agentron")
        #expect(entry["status"] as? String == "ready")
        #expect(entry["updatedAt"] is String)
        #expect(entry["baseUrl"] as? String == endpoint + "/v1")
        #expect(entry["models"] as? [String] == ["reg"])
        #expect(entry["api"] as? String == "openai")
        try ProviderSchema.expectValid(file.path)
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text.contains(foreignElement), "the app's entry is byte-for-byte as written")
        #expect(
            text.hasPrefix("{\n  \"app\": {\"theme\": \"dark\"},\n  \"providers\": [\n    " + foreignElement + ",\n"))

        let listed = try await harness.run(["providers", "--json"])
        #expect(listed.code == 0, "providers failed: \(listed.stderr)")
        let status = try harness.json(listed.stdout)
        let targets = try #require(status["targets"] as? [[String: Any]])
        let own = try #require(targets.first { $0["kind"] as? String == "agentron" })
        #expect(own["path"] as? String == file.path)
        #expect(own["error"] == nil)
        let shown = try #require((own["entries"] as? [[String: Any]])?.first { $0["id"] as? String == "reg" })
        #expect(shown["endpoint"] as? String == endpoint)
        #expect(shown["status"] as? String == "ready")
        let table = try await harness.run(["providers"])
        #expect(table.stdout.contains("reg"))
        #expect(table.stdout.contains(endpoint))

        let down = try await harness.run(["down", "reg"])
        #expect(down.code == 0, "down failed: \(down.stderr)")
        var gone = false
        let goneDeadline = Date().addingTimeInterval(10)
        while !gone, Date() < goneDeadline {
            gone = (try? entries(harness).contains { $0["id"] as? String == "reg" }) == false
            if !gone { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(gone, "reg still registered after down")
        #expect(try String(contentsOf: file, encoding: .utf8) == Self.foreign, "the file is as the app left it")
    }

    /// A root daemon's providers.json is 0600 (it holds keys); users' apps read a copy
    /// without them in the runtime directory.
    @Test func aRootDaemonWritesAPublicCopyWithoutKeys() async throws {
        try #require(getuid() == 0, "the public copy is the system daemon's (CI runs as root)")
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        let up = try await harness.run([
            "up", "org/m", "--engine", "vllm", "--name", "keyed", "--env", "VLLM_API_KEY=sk-very-secret",
        ])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        let copy = harness.home.appendingPathComponent("run/providers.json")
        var entry: [String: Any]?
        let deadline = Date().addingTimeInterval(10)
        while entry == nil, Date() < deadline {
            if let data = try? Data(contentsOf: copy),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            {
                entry = (object["providers"] as? [[String: Any]])?.first { $0["id"] as? String == "keyed" }
            }
            if entry == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let shown = try #require(entry, "no public copy at \(copy.path)")
        #expect(shown["apiKey"] == nil && shown["apiKeyRequired"] as? Bool == true)
        #expect(!(try String(contentsOf: copy, encoding: .utf8)).contains("sk-very-secret"))
        #expect(try entries(harness).first { $0["id"] as? String == "keyed" }?["apiKey"] as? String == "sk-very-secret")
        let attributes = try FileManager.default.attributesOfItem(atPath: copy.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o644, "every user may read it")
        try ProviderSchema.expectValid(copy.path)
        try ProviderSchema.expectValid(providersFile(harness).path)
        #expect(try await harness.run(["down", "keyed"]).code == 0)
    }

    @Test func noRegisterKeepsTheServerOutOfTheFile() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "hidden", "--no-register"])
        #expect(up.code == 0, "up failed: \(up.stderr)")
        try await Task.sleep(for: .milliseconds(300))
        let ids = (try? entries(harness).compactMap { $0["id"] as? String }) ?? []
        #expect(!ids.contains("hidden"))
        let listed = try await harness.run(["providers", "--json"])
        #expect(!listed.stdout.contains("\"hidden\""))
        #expect(try await harness.run(["down", "hidden"]).code == 0)
    }

    @Test func aCorruptFileIsLeftAloneAndReported() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let file = providersFile(harness)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let corrupt = "{\n  \"providers\": [\n    {\"id\": \"x\",}\n  ]\n}\n"
        try Data(corrupt.utf8).write(to: file)
        try await harness.startDaemon()

        let up = try await harness.run(["up", "org/m", "--engine", "vllm", "--name", "reg"])
        #expect(up.code == 0, "the server runs regardless: \(up.stderr)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try String(contentsOf: file, encoding: .utf8) == corrupt)
        let table = try await harness.run(["providers"])
        #expect(table.stdout.contains("not valid JSON at line 3"), "\(table.stdout)")
        #expect(try await harness.run(["down", "reg"]).code == 0)
    }
}
