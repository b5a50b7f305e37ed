import AgentronConfig
import AgentronCore
import AgentronEngines
import AgentronJSON
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

// Issue #4: the registrar keeps the shared provider config true and harms nothing else.

/// A private directory for one test's files, removed when the test ends.
private final class Scratch: @unchecked Sendable {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "agentron-registrar-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ name: String) -> String { root + "/" + name }

    func write(_ name: String, _ text: String, mode: Int? = nil) throws {
        let path = path(name)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        if let mode { chmod(path, mode_t(mode)) }
    }

    func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(name)))) }
    func text(_ name: String) throws -> String { String(decoding: try bytes(name), as: UTF8.self) }

    func json(_ name: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(try bytes(name)))
        return try #require(object as? [String: Any])
    }

    func providers(_ name: String = "providers.json") throws -> [[String: Any]] {
        try #require(try json(name)["providers"] as? [[String: Any]])
    }

    func stamp(_ name: String) -> FileStamp? { FileStamp.of(path(name)) }
}

private let logger = Logger(label: "registrar-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func server(
    _ name: String, _ engine: EngineKind = .vllm, port: Int = 8001, status: String = "ready", apiKey: String? = nil,
    contextLength: Int? = nil
) -> RegisteredServer {
    RegisteredServer(
        name: name, engine: engine, endpoint: "http://127.0.0.1:\(port)", model: name, apiKey: apiKey, status: status,
        contextLength: contextLength)
}

/// The first model of an OpenClaw provider value.
private func firstModel(_ provider: JSONValue) -> JSONValue? {
    guard case .array(let models)? = provider["models"] else { return nil }
    return models.first
}

private func ours(_ entries: [[String: Any]]) -> [[String: Any]] {
    entries.filter { $0["managedBy"] as? String == "agentron" }
}

/// Everything in a providers file that is not agentron's: the bytes before and after the
/// `providers` array, and the exact bytes of every element agentron does not own.
private func foreignBytes(_ bytes: [UInt8]) throws -> (before: [UInt8], after: [UInt8], elements: [[UInt8]]) {
    let root = try JSONScanner.parse(bytes)
    let providers = try #require(root.members(named: "providers").first?.node)
    let elements = providers.items.filter { !ProvidersFile.isOwned($0.node.value) }.map { Array(bytes[$0.range]) }
    return (
        Array(bytes[..<providers.range.lowerBound]), Array(bytes[providers.range.upperBound...]), elements
    )
}

@Suite(.serialized, .timeLimit(.minutes(2)))
struct RegistrarTests {
    @Test func resolvesTheDefaultLocationAndTheOverrides() {
        let paths = AgentronPaths.current(environment: ["AGENTRON_HOME": "/tmp/h"])
        #expect(
            RegistrarConfig.resolve(paths: paths, environment: [:], isRoot: false)
                == RegistrarConfig(providersPath: "/tmp/h/config/providers.json"))
        let custom = RegistrarConfig.resolve(
            paths: paths,
            environment: [
                "AGENTRON_PROVIDERS_FILE": "/srv/p.json", "AGENTRON_OPENCLAW_CONFIG": "~/.openclaw/openclaw.json",
                "HOME": "/home/u",
            ],
            isRoot: true)
        // A root daemon also keeps a copy without keys for users, in its runtime directory.
        #expect(
            custom
                == RegistrarConfig(
                    providersPath: "/srv/p.json", openClawPath: "/home/u/.openclaw/openclaw.json",
                    publicCopyPath: "/tmp/h/run/providers.json"))
    }

    @Test func createsUpdatesAndRemovesItsEntries() async throws {
        let scratch = try Scratch()
        let file = "sub/dir/providers.json"
        let registrar = Registrar(config: RegistrarConfig(providersPath: scratch.path(file)), logger: logger)
        defer { Task { await registrar.stop() } }

        await registrar.sync([])
        #expect(!FileManager.default.fileExists(atPath: scratch.path(file)), "nothing to register: no file")

        await registrar.sync([server("b", .ollama, port: 8002), server("a", apiKey: "sk-1")])
        let document = try scratch.json(file)
        #expect(document["version"] as? Int == 1)
        let entries = try scratch.providers(file)
        #expect(entries.map { $0["id"] as? String } == ["a", "b"])
        let a = entries[0]
        #expect(a["provider"] as? String == "vllm")
        #expect(a["endpoint"] as? String == "http://127.0.0.1:8001")
        #expect(a["model"] as? String == "a")
        #expect(a["apiKey"] as? String == "sk-1")
        #expect(a["managedBy"] as? String == "agentron")
        #expect(a["status"] as? String == "ready")
        #expect((a["updatedAt"] as? String)?.hasSuffix("Z") == true)
        #expect(entries[1]["provider"] as? String == "local")
        #expect(entries[1]["apiKey"] == nil)
        var info = stat()
        stat(scratch.path(file), &info)
        #expect(info.st_mode & 0o777 == 0o600, "entries may hold API keys")

        let status = await registrar.status()
        #expect(status.targets.map(\.kind) == ["agentron", "openclaw", "agentron-app"])
        #expect(status.targets[0].entries.map(\.id) == ["a", "b"])
        #expect(status.targets[0].entries[0].hasApiKey)
        #expect(status.targets[0].error == nil)
        #expect(status.targets[0].lastWrite != nil)
        #expect(status.targets[1].enabled == false)

        await registrar.sync([server("a", status: "unhealthy"), server("c", .command, port: 8003)])
        let next = try scratch.providers(file)
        #expect(next.map { $0["id"] as? String } == ["a", "c"])
        #expect(next[0]["status"] as? String == "unhealthy")
        #expect(next[0]["apiKey"] == nil, "the key went away with the profile's")
        #expect(next[1]["provider"] as? String == "custom_http")

        await registrar.sync([])
        #expect(try scratch.providers(file).isEmpty)
        #expect(await registrar.status().targets[0].entries.isEmpty)
    }

    @Test func anUnchangedSetWritesNothing() async throws {
        let scratch = try Scratch()
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a"), server("b", .tgi)])
        let before = try scratch.bytes("providers.json")
        let stamp = scratch.stamp("providers.json")
        try await Task.sleep(for: .milliseconds(20))
        for _ in 0..<5 { await registrar.sync([server("b", .tgi), server("a")]) }
        #expect(try scratch.bytes("providers.json") == before)
        #expect(scratch.stamp("providers.json") == stamp, "not even rewritten with the same bytes")
    }

    @Test func otherEntriesAndUnknownKeysStayByteForByte() async throws {
        let scratch = try Scratch()
        let original = """
            {
                "version": 1,
                "$schema": "https://example.com/providers.schema.json",
                "defaults": {"timeout": 1.50e1, "retries": 3},
                "providers": [
                    { "id": "openai", "provider": "openai", "apiKey": "sk-\\u00e9", "models": ["gpt-4o"] },
                    {
                        "id": "home-box",   "provider": "vllm",
                        "endpoint": "http://10.0.0.2:8000",
                        "managedBy": "someone-else"
                    },
                    {"id": "stale", "provider": "vllm", "endpoint": "http://127.0.0.1:9", "model": "stale", "managedBy": "agentron", "status": "ready"}
                ],
                "ui": {"theme": "dark"}
            }

            """
        try scratch.write("providers.json", original)
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }

        let originalForeign = try foreignBytes(Array(original.utf8))
        let pool = [
            server("a"), server("b", .ollama, port: 8002), server("c", .tgi, port: 8003),
            server("d", .command, port: 8004),
        ]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<40 {
            let set = pool.filter { _ in Bool.random(using: &generator) }.map { server -> RegisteredServer in
                var copy = server
                copy.status = ["ready", "unhealthy", "restarting"][round % 3]
                return copy
            }
            await registrar.sync(set)
            let bytes = try scratch.bytes("providers.json")
            let foreign = try foreignBytes(bytes)
            #expect(foreign.before == originalForeign.before, "round \(round)")
            #expect(foreign.after == originalForeign.after, "round \(round)")
            #expect(foreign.elements == Array(originalForeign.elements), "round \(round)")
            #expect(Set(ours(try scratch.providers()).compactMap { $0["id"] as? String }) == Set(set.map(\.name)))
        }
        await registrar.sync([])
        let cleared = String(decoding: try scratch.bytes("providers.json"), as: UTF8.self)
        let expected = original.replacingOccurrences(
            of: ",\n        "
                + #"{"id": "stale", "provider": "vllm", "endpoint": "http://127.0.0.1:9", "model": "stale", "managedBy": "agentron", "status": "ready"}"#,
            with: "")
        #expect(cleared == expected)
    }

    @Test func newEntriesFollowTheFilesIndentation() async throws {
        let scratch = try Scratch()
        try scratch.write("providers.json", "{\n\t\"providers\": [\n\t\t{\"id\": \"x\"}\n\t]\n}\n")
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        let text = try scratch.text("providers.json")
        #expect(
            text.hasPrefix(
                "{\n\t\"providers\": [\n\t\t{\"id\": \"x\"},\n\t\t{\n\t\t\t\"api\": \"openai\",\n\t\t\t\"baseUrl\": \"http://127.0.0.1:8001/v1\",\n"
            ))
        #expect(text.hasSuffix("\n\t\t}\n\t]\n}\n"))
    }

    @Test func aFileWithoutProvidersGetsTheKeyAndNothingElseChanges() async throws {
        let scratch = try Scratch()
        try scratch.write("providers.json", "{\n  \"owner\": \"app\"\n}\n")
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        let text = try scratch.text("providers.json")
        #expect(text.hasPrefix("{\n  \"owner\": \"app\",\n  \"providers\": [\n    {\n"))
        #expect(try scratch.json("providers.json")["owner"] as? String == "app")
        #expect(try scratch.providers().count == 1)
    }

    @Test func anUnknownFieldInsideItsOwnEntrySurvivesAnUpdate() async throws {
        let scratch = try Scratch()
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])

        // The app annotates agentron's entry.
        var document = try scratch.json("providers.json")
        var entries = try scratch.providers()
        entries[0]["contextWindow"] = 32768
        entries[0]["labels"] = ["fast", "local"]
        document["providers"] = entries
        try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: scratch.path("providers.json")))

        await registrar.sync([server("a", port: 8100, status: "unhealthy")])
        let updated = try #require(try scratch.providers().first)
        #expect(updated["endpoint"] as? String == "http://127.0.0.1:8100")
        #expect(updated["status"] as? String == "unhealthy")
        #expect(updated["contextWindow"] as? Int == 32768)
        #expect(updated["labels"] as? [String] == ["fast", "local"])
    }

    @Test func aCorruptFileIsLeftAloneReportedAndRetriedWhenFixed() async throws {
        let scratch = try Scratch()
        let corrupt = "{\n  \"providers\": [\n    {\"id\": \"mine\",}\n  ]\n}\n"
        try scratch.write("providers.json", corrupt)
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }

        await registrar.sync([server("a")])
        await registrar.sync([server("a"), server("b")])
        #expect(try scratch.text("providers.json") == corrupt, "byte-identical")
        let target = try #require(await registrar.status().targets.first)
        let error = try #require(target.error)
        #expect(error.contains("not valid JSON at line 3"), "\(error)")
        #expect(error.contains("left untouched"))
        #expect(target.entries.isEmpty)

        // Fixed by hand: the watcher notices and writes, no sync needed.
        try scratch.write("providers.json", "{\n  \"providers\": [\n    {\"id\": \"mine\"}\n  ]\n}\n")
        let deadline = ContinuousClock.now.advanced(by: Registrar.pollInterval * 4)
        while ContinuousClock.now < deadline, await registrar.status().targets[0].error != nil {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(await registrar.status().targets[0].error == nil)
        let entries = try scratch.providers()
        #expect(entries.map { $0["id"] as? String } == ["mine", "a", "b"])
    }

    @Test func providersThatIsNotAnArrayIsReported() async throws {
        let scratch = try Scratch()
        let odd = "{\"providers\": {\"a\": 1}}"
        try scratch.write("providers.json", odd)
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        #expect(try scratch.text("providers.json") == odd)
        #expect(await registrar.status().targets[0].error?.contains("\"providers\" is not an array") == true)
    }

    @Test func anIdTakenByAForeignEntryIsNotDuplicated() async throws {
        let scratch = try Scratch()
        try scratch.write("providers.json", "{\"providers\": [{\"id\": \"a\", \"provider\": \"openai\"}]}")
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a"), server("b")])
        let entries = try scratch.providers()
        #expect(entries.map { $0["id"] as? String } == ["a", "b"])
        #expect(entries[0]["provider"] as? String == "openai")
        let target = try #require(await registrar.status().targets.first)
        #expect(target.error?.contains("not registered: \"a\"") == true)
        #expect(target.entries.map(\.id) == ["b"])
    }

    @Test func permissionsAreKept() async throws {
        let scratch = try Scratch()
        try scratch.write("providers.json", "{\"providers\": []}\n", mode: 0o640)
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        var info = stat()
        #expect(stat(scratch.path("providers.json"), &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o640)
        #expect(try scratch.providers().count == 1)
        // No temp file left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.root)
        #expect(Set(names) == ["providers.json", "providers.json.lock"])
    }

    @Test func aSymlinkedFileStaysALink() async throws {
        let scratch = try Scratch()
        try scratch.write("dotfiles/providers.json", "{\"providers\": []}\n")
        try FileManager.default.createSymbolicLink(
            atPath: scratch.path("providers.json"), withDestinationPath: scratch.path("dotfiles/providers.json"))
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        let destination = try FileManager.default.destinationOfSymbolicLink(atPath: scratch.path("providers.json"))
        #expect(destination == scratch.path("dotfiles/providers.json"))
        #expect(try scratch.providers("dotfiles/providers.json").count == 1)
    }

    // MARK: OpenClaw

    @Test func openClawStrictJSONGetsOnlyAgentronIds() async throws {
        let scratch = try Scratch()
        let original = """
            {
              "agents": {"defaults": {"model": {"primary": "agentron-a/a"}}},
              "models": {
                "mode": "merge",
                "providers": {
                  "my-box": {"baseUrl": "http://10.0.0.2:8000/v1", "api": "openai-completions", "models": [{"id": "m", "name": "m"}]},
                  "agentron-gone": {"baseUrl": "http://127.0.0.1:9/v1", "api": "openai-completions", "models": []}
                }
              }
            }

            """
        try scratch.write("openclaw.json", original)
        let registrar = Registrar(
            config: RegistrarConfig(
                providersPath: scratch.path("providers.json"), openClawPath: scratch.path("openclaw.json")),
            logger: logger)
        defer { Task { await registrar.stop() } }

        await registrar.sync([server("a", apiKey: "sk-x"), server("vllm", port: 8002)])
        let document = try scratch.json("openclaw.json")
        let providers = try #require((document["models"] as? [String: Any])?["providers"] as? [String: Any])
        #expect(Set(providers.keys) == ["my-box", "agentron-a", "agentron-vllm"])
        let a = try #require(providers["agentron-a"] as? [String: Any])
        #expect(Set(a.keys) == ["baseUrl", "api", "models", "apiKey"], "OpenClaw rejects unknown keys")
        #expect(a["baseUrl"] as? String == "http://127.0.0.1:8001/v1")
        #expect(a["api"] as? String == "openai-completions")
        #expect(a["apiKey"] as? String == "sk-x")
        let models = try #require(a["models"] as? [[String: String]])
        #expect(models == [["id": "a", "name": "a"]])
        let text = try scratch.text("openclaw.json")
        #expect(
            text.contains(
                #""my-box": {"baseUrl": "http://10.0.0.2:8000/v1", "api": "openai-completions", "models": [{"id": "m", "name": "m"}]}"#
            ))
        #expect(
            text.hasPrefix(
                "{\n  \"agents\": {\"defaults\": {\"model\": {\"primary\": \"agentron-a/a\"}}},\n  \"models\": {\n    \"mode\": \"merge\",\n"
            ))

        let status = await registrar.status()
        let claw = try #require(status.targets.first { $0.kind == "openclaw" })
        #expect(claw.enabled)
        #expect(claw.entries.map(\.id) == ["agentron-a", "agentron-vllm"])
        #expect(claw.error == nil)

        await registrar.sync([])
        let cleared = try scratch.text("openclaw.json")
        #expect(!cleared.contains("agentron-a\""))
        #expect(cleared.contains("\"my-box\""))
        #expect(cleared.hasPrefix("{\n  \"agents\""))
    }

    @Test func openClawJSON5IsLeftUntouchedWithASnippet() async throws {
        let scratch = try Scratch()
        let json5 = """
            // OpenClaw config
            {
              models: {
                providers: {
                  "my-box": { baseUrl: "http://10.0.0.2:8000/v1", api: "openai-completions", models: [] }, // trailing
                },
              },
            }

            """
        try scratch.write("openclaw.json", json5)
        let registrar = Registrar(
            config: RegistrarConfig(
                providersPath: scratch.path("providers.json"), openClawPath: scratch.path("openclaw.json")),
            logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a", apiKey: "sk-secret")])

        #expect(try scratch.text("openclaw.json") == json5)
        #expect(try scratch.providers().count == 1, "the agentron target is written regardless")
        let claw = try #require(await registrar.status().targets.first { $0.kind == "openclaw" })
        #expect(claw.error?.contains("not strict JSON") == true)
        let snippet = try #require(claw.snippet)
        #expect(snippet.contains("\"agentron-a\": {"))
        #expect(snippet.contains("\"baseUrl\": \"http://127.0.0.1:8001/v1\""))
        #expect(snippet.contains("\"api\": \"openai-completions\""))
        #expect(!snippet.contains("sk-secret"), "keys are not printed")

        // Nothing to register: JSON5 is OpenClaw's normal format, not an error.
        await registrar.sync([])
        #expect(try scratch.text("openclaw.json") == json5)
        let idle = try #require(await registrar.status().targets.first { $0.kind == "openclaw" })
        #expect(idle.error == nil)
        #expect(idle.snippet == nil)
    }

    @Test func openClawFileWithoutModelsGetsTheKey() async throws {
        let scratch = try Scratch()
        try scratch.write("openclaw.json", "{\n  \"gateway\": {\"port\": 18789}\n}\n")
        let registrar = Registrar(
            config: RegistrarConfig(
                providersPath: scratch.path("providers.json"), openClawPath: scratch.path("openclaw.json")),
            logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])
        let text = try scratch.text("openclaw.json")
        #expect(
            text.hasPrefix(
                "{\n  \"gateway\": {\"port\": 18789},\n  \"models\": {\n    \"providers\": {\n      \"agentron-a\": {\n"
            ))
        let document = try scratch.json("openclaw.json")
        #expect((document["gateway"] as? [String: Any])?["port"] as? Int == 18789)
    }

    @Test func openClawConfigIsNeverCreated() async throws {
        let scratch = try Scratch()
        let path = scratch.path(".openclaw/openclaw.json")
        let registrar = Registrar(
            config: RegistrarConfig(providersPath: scratch.path("providers.json"), openClawPath: path), logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("a")])

        // Not the file, nor its directory, nor a lock: a file agentron made would hold only
        // models.providers, and recent OpenClaw refuses to start its gateway from that.
        #expect(!FileManager.default.fileExists(atPath: scratch.path(".openclaw")))
        #expect(try scratch.providers().count == 1, "the agentron target is written regardless")
        let claw = try #require(await registrar.status().targets.first { $0.kind == "openclaw" })
        #expect(
            claw.error
                == "no OpenClaw config at \(path); run openclaw once (or openclaw setup) to create it, then agentron registers there"
        )
        #expect(claw.entries.isEmpty)
        #expect(claw.snippet?.contains("\"agentron-a\": {") == true)

        // Once OpenClaw has made its file, agentron registers there.
        try scratch.write(".openclaw/openclaw.json", "{\n  \"gateway\": {\"mode\": \"local\"}\n}\n")
        await registrar.sync([server("a")])
        let document = try scratch.json(".openclaw/openclaw.json")
        #expect((document["gateway"] as? [String: Any])?["mode"] as? String == "local")
        let providers = try #require((document["models"] as? [String: Any])?["providers"] as? [String: Any])
        #expect(Set(providers.keys) == ["agentron-a"])
        let after = try #require(await registrar.status().targets.first { $0.kind == "openclaw" })
        #expect(after.error == nil)
        #expect(after.snippet == nil)
    }

    @Test func openClawEmptyConfigIsNotFilledIn() throws {
        let error = try #require(throws: RegistrarFileError.self) {
            try OpenClawFile.plan(existing: nil, desired: [server("a")])
        }
        #expect(error.description.contains("run openclaw once"))
        #expect(try OpenClawFile.plan(existing: nil, desired: []).bytes == nil)
    }

    @Test func openClawModelCarriesTheContextWhenKnown() throws {
        let known = OpenClawFile.value(server("big", contextLength: 32768))
        let model = try #require(firstModel(known))
        #expect(
            model.same(
                as: .object([
                    ("contextWindow", .number("32768")), ("id", .string("big")), ("maxTokens", .number("8192")),
                    ("name", .string("big")),
                ])))
        // A quarter of the window for the reply, at most 8192: the prompt keeps the rest.
        #expect(OpenClawFile.maxTokens(contextLength: 20000) == 5000)
        #expect(OpenClawFile.maxTokens(contextLength: 131072) == 8192)

        let unknown = OpenClawFile.value(server("plain"))
        let bare = try #require(firstModel(unknown))
        #expect(
            bare.same(as: .object([("id", .string("plain")), ("name", .string("plain"))])), "no guess when unknown")
        #expect(OpenClawFile.warning([server("plain"), server("big", contextLength: 32768)]) == nil)
    }

    @Test func openClawSmallContextIsWrittenWithAWarning() async throws {
        let scratch = try Scratch()
        try scratch.write("openclaw.json", "{}\n")
        let registrar = Registrar(
            config: RegistrarConfig(
                providersPath: scratch.path("providers.json"), openClawPath: scratch.path("openclaw.json")),
            logger: logger)
        defer { Task { await registrar.stop() } }
        await registrar.sync([server("small", contextLength: 8192)])

        let document = try scratch.json("openclaw.json")
        let providers = try #require((document["models"] as? [String: Any])?["providers"] as? [String: Any])
        let entry = try #require(providers["agentron-small"] as? [String: Any])
        let models = try #require(entry["models"] as? [[String: Any]])
        #expect(models.first?["contextWindow"] as? Int == 8192)
        #expect(models.first?["maxTokens"] as? Int == 2048)
        let claw = try #require(await registrar.status().targets.first { $0.kind == "openclaw" })
        #expect(claw.entries.map(\.id) == ["agentron-small"])
        #expect(claw.error?.contains("under 16000 tokens: agentron-small (8192)") == true)
    }

    @Test func openClawOllamaUsesTheNativeAPI() throws {
        for endpoint in ["http://127.0.0.1:11434", "http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1"] {
            let ollama = RegisteredServer(
                name: "llama", engine: .ollama, endpoint: endpoint, model: "llama3.2:1b", apiKey: nil, status: "ready",
                contextLength: 16384)
            let value = OpenClawFile.value(ollama)
            #expect(value["api"]?.stringValue == "ollama")
            #expect(value["baseUrl"]?.stringValue == "http://127.0.0.1:11434", "no /v1: it breaks tool calling")
            #expect(firstModel(value)?["contextWindow"]?.same(as: .number("16384")) == true)
            #expect(OpenClawFile.view(ollama).provider == "ollama")
        }
        let vllm = OpenClawFile.value(server("v"))
        #expect(vllm["api"]?.stringValue == "openai-completions")
        #expect(vllm["baseUrl"]?.stringValue == "http://127.0.0.1:8001/v1")
    }

    @Test func ipv6HostsAreBracketedInEveryURL() throws {
        func url(_ host: String) -> String {
            var profile = Profile(name: "p", engine: .vllm, model: "m")
            profile.host = host
            return EngineContext(profile: profile, port: 8001, daemonEnvironment: [:]).baseURL
        }
        #expect(url("::1") == "http://[::1]:8001")
        #expect(url("fe80::1%eth0") == "http://[fe80::1%eth0]:8001")
        #expect(url("[::1]") == "http://[::1]:8001")
        #expect(url("::") == "http://127.0.0.1:8001", "all interfaces are reached over loopback")
        #expect(url("0.0.0.0") == "http://127.0.0.1:8001")
        #expect(url("127.0.0.1") == "http://127.0.0.1:8001")

        let v6 = RegisteredServer(
            name: "six", engine: .vllm, endpoint: url("::1"), model: "m", apiKey: nil, status: "ready")
        #expect(OpenClawFile.value(v6)["baseUrl"]?.stringValue == "http://[::1]:8001/v1")
        #expect(ProvidersFile.view(v6).endpoint == "http://[::1]:8001")
    }

    // MARK: Concurrency

    /// Another process rewrites the file under the same lock while servers come and go and
    /// a reader parses it in a tight loop: no entry is lost and no read is ever torn.
    @Test(.timeLimit(.minutes(1)))
    func concurrentWritersLoseNothingAndReadersNeverSeeATornFile() async throws {
        let scratch = try Scratch()
        let file = scratch.path("providers.json")
        let script = scratch.path("app.py")
        try scratch.write("app.py", appScript)
        let iterations = 200
        let app = Process()
        app.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        app.arguments = ["python3", script, file, String(iterations)]
        app.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try app.run()
        defer {
            if app.isRunning { kill(app.processIdentifier, SIGKILL) }
            app.waitUntilExit()
        }

        // On a thread of its own: a tight loop must not take a cooperative-pool thread.
        let reader = Reader(path: file)
        reader.start()
        defer { reader.stopAndWait() }

        let registrar = Registrar(config: RegistrarConfig(providersPath: file), logger: logger)
        defer { Task { await registrar.stop() } }
        let pool = (0..<6).map { server("s\($0)", port: 8001 + $0) }
        var syncs = 0
        let statuses = ["ready", "unhealthy", "restarting"]
        while app.isRunning, syncs < 5000 {
            let set = pool.filter { _ in Bool.random() }.map { server -> RegisteredServer in
                var copy = server
                copy.status = statuses.randomElement() ?? "ready"
                return copy
            }
            await registrar.sync(set)
            syncs += 1
        }
        app.waitUntilExit()
        #expect(app.terminationStatus == 0)
        let final = [pool[1], pool[4]]
        await registrar.sync(final)
        reader.stopAndWait()

        let entries = try scratch.providers()
        let appEntries = entries.filter { $0["id"] as? String == "app-entry" }
        #expect(appEntries.count == 1)
        #expect(appEntries.first?["counter"] as? Int == iterations - 1, "the app's last write survived")
        let owned = ours(entries)
        #expect(owned.compactMap { $0["id"] as? String }.sorted() == ["s1", "s4"])
        #expect(owned.allSatisfy { $0["status"] as? String == "ready" })
        #expect(entries.count == 3)
        #expect(syncs > 10, "syncs ran while the app wrote: \(syncs)")
        let result = reader.result
        #expect(result.reads > 50, "reads: \(result.reads)")
        #expect(result.unparsable == 0, "torn or invalid reads: \(result.firstBad ?? "")")
        #expect(result.appEntryLost == 0, "the app's entry vanished after it had appeared")
        #expect(await registrar.status().targets[0].error == nil)
    }
}

/// The app: takes the same lock, reads, changes its own entry, writes atomically.
private let appScript = """
    import fcntl, json, os, sys, time
    path, iterations = sys.argv[1], int(sys.argv[2])
    for i in range(iterations):
        with open(path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(path) as f:
                    doc = json.load(f)
            except FileNotFoundError:
                doc = {"version": 1, "providers": []}
            entries = [e for e in doc["providers"] if e.get("id") != "app-entry"]
            entries.insert(0, {"id": "app-entry", "provider": "openai", "counter": i})
            doc["providers"] = entries
            tmp = path + ".app.tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
            fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(0.003)
    """

/// Parses the file in a tight loop on its own thread until stopped.
private final class Reader: @unchecked Sendable {
    struct Result {
        var reads = 0
        var unparsable = 0
        var appEntryLost = 0
        var firstBad: String?
    }

    let path: String
    private let lock = NSLock()
    private var stopped = false
    private var state = Result()
    private let finished = DispatchSemaphore(value: 0)
    private var running = false

    init(path: String) { self.path = path }

    var result: Result { lock.withLock { state } }

    func start() {
        running = true
        Thread.detachNewThread { [self] in
            run()
            finished.signal()
        }
    }

    func stopAndWait() {
        lock.withLock { stopped = true }
        if running {
            finished.wait()
            running = false
        }
    }

    private func run() {
        var seenApp = false
        while !lock.withLock({ stopped }) {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            var bad: String?
            var hasApp = false
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let providers = object["providers"] as? [[String: Any]]
            {
                hasApp = providers.contains { $0["id"] as? String == "app-entry" }
            } else {
                bad = String(decoding: data.prefix(200), as: UTF8.self)
            }
            lock.withLock {
                state.reads += 1
                if let bad {
                    state.unparsable += 1
                    if state.firstBad == nil { state.firstBad = bad }
                }
                if seenApp && !hasApp && bad == nil { state.appEntryLost += 1 }
            }
            seenApp = seenApp || hasApp
        }
    }
}
