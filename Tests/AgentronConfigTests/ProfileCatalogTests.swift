import AgentronCore
import AgentronEngines
import Foundation
import Testing

@testable import AgentronConfig

/// A temporary directory tree removed when the test ends.
private final class TempTree {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "agentron-catalog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    @discardableResult
    func write(_ relativePath: String, _ text: String) throws -> String {
        let path = root + "/" + relativePath
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// The source tree's `profiles/`, found from this file: Tests/AgentronConfigTests/<file>.
private let sourceProfilesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("profiles").path

@Suite struct ProfileCatalogTests {
    @Test func userProfileShadowsBuiltinOne() throws {
        let tree = try TempTree()
        let builtinA = try tree.write("builtin/qwen-small.yaml", "engine: vllm\nmodel: Qwen/Qwen2.5-1.5B-Instruct\n")
        try tree.write("builtin/llama-small.yaml", "engine: vllm\nmodel: meta-llama/Llama-3.2-1B-Instruct\n")
        let systemA = try tree.write("system/qwen-small.yaml", "engine: vllm\nmodel: Qwen/Qwen2.5-3B-Instruct\n")
        let userA = try tree.write("user/qwen-small.yml", "engine: ollama\nmodel: qwen2.5:1.5b\n")
        try tree.write("user/notes.txt", "not a profile")
        try tree.write("user/.hidden.yaml", "engine: [")

        let catalog = ProfileCatalog(
            builtinDirectory: tree.root + "/builtin",
            directories: [tree.root + "/system", tree.root + "/missing", tree.root + "/user"])
        let entries = catalog.entries()
        #expect(entries.map(\.name) == ["llama-small", "qwen-small"])

        let qwen = try #require(entries.first { $0.name == "qwen-small" })
        #expect(qwen.path == userA)
        #expect(qwen.origin == .directory(tree.root + "/user"))
        #expect(qwen.shadows == [builtinA, systemA])
        #expect(qwen.profile?.engine == .ollama)
        #expect(qwen.error == nil)

        let llama = try #require(entries.first { $0.name == "llama-small" })
        #expect(llama.origin == .builtin && llama.origin.description == "builtin")
        #expect(llama.shadows.isEmpty)

        let resolved = try catalog.resolve("qwen-small")
        #expect(resolved.model == "qwen2.5:1.5b")
        #expect(resolved.source == userA)
    }

    /// The daemon's cached catalog reads the files again only when one changed.
    @Test func theCacheReadsAgainOnlyWhenAFileChanged() throws {
        let tree = try TempTree()
        let qwen = try tree.write("user/qwen.yaml", "engine: vllm\nmodel: Qwen/Qwen2.5-1.5B-Instruct\n")
        var cache = ProfileCatalogCache(ProfileCatalog(builtinDirectory: nil, directories: [tree.root + "/user"]))
        #expect(cache.entries().map(\.name) == ["qwen"])
        #expect(cache.entries().map(\.name) == ["qwen"])
        #expect(cache.reads == 1, "nothing changed: no second read")

        try tree.write("user/qwen.yaml", "engine: vllm\nmodel: Qwen/Qwen2.5-3B-Instruct\n")
        #expect(cache.entries().first?.profile?.model == "Qwen/Qwen2.5-3B-Instruct")
        #expect(cache.reads == 2)
        try tree.write("user/llama.yaml", "engine: vllm\nmodel: meta-llama/Llama-3.2-1B-Instruct\n")
        #expect(cache.entries().map(\.name) == ["llama", "qwen"])
        try FileManager.default.removeItem(atPath: qwen)
        #expect(cache.entries().map(\.name) == ["llama"])
        #expect(cache.reads == 4)
    }

    @Test func invalidFileIsListedWithItsError() throws {
        let tree = try TempTree()
        try tree.write("user/good.yaml", "engine: vllm\nmodel: m\n")
        let bad = try tree.write("user/broken.yaml", "engine: vllm\nmodel: m\nprobe:\n  interval: 5x\n")
        let catalog = ProfileCatalog(builtinDirectory: nil, directories: [tree.root + "/user"])

        let entries = catalog.entries()
        #expect(entries.map(\.name) == ["broken", "good"])
        let broken = try #require(entries.first)
        #expect(broken.profile == nil)
        #expect(
            broken.error
                == ProfileError(
                    file: bad, line: 4, column: 13, field: "probe.interval",
                    message: "invalid duration \"5x\"; write it like 90s, 30m or 500ms"))

        // Resolving the broken name gives its error rather than "not found".
        do throws(ProfileError) {
            _ = try catalog.resolve("broken")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == bad && error.field == "probe.interval")
        }
    }

    @Test func invalidUserFileStillShadowsTheBuiltin() throws {
        let tree = try TempTree()
        let builtin = try tree.write("builtin/x.yaml", "engine: vllm\nmodel: m\n")
        try tree.write("user/x.yaml", "engine: vllm\n")
        let catalog = ProfileCatalog(builtinDirectory: tree.root + "/builtin", directories: [tree.root + "/user"])
        let entry = try #require(catalog.entries().first)
        #expect(entry.error?.field == "model")
        #expect(entry.shadows == [builtin])
        #expect(throws: ProfileError.self) { try catalog.resolve("x") }
    }

    @Test func resolveByPath() throws {
        let tree = try TempTree()
        let path = try tree.write(
            "elsewhere/custom.yaml",
            "engine: tgi\nmodel: m\nimage: ghcr.io/huggingface/text-generation-inference:3.3.5\n")
        let catalog = ProfileCatalog(builtinDirectory: nil, directories: [])
        let profile = try catalog.resolve(path)
        #expect(profile.name == "custom")
        #expect(profile.engine == .tgi)
        #expect(profile.source == path)

        do throws(ProfileError) {
            _ = try catalog.resolve("missing.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == "missing.yaml")
            #expect(error.message.hasPrefix("cannot read the profile: No such file or directory"))
        }
    }

    @Test func unknownNameSuggestsCloseNames() throws {
        let tree = try TempTree()
        for name in ["qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "llama-3.2-1b-instruct"] {
            try tree.write("p/\(name).yaml", "engine: vllm\nmodel: m\n")
        }
        let catalog = ProfileCatalog(builtinDirectory: tree.root + "/p", directories: [])

        func message(_ name: String) -> String? {
            do throws(ProfileError) {
                _ = try catalog.resolve(name)
                return nil
            } catch {
                #expect(error.file == "" && error.line == 0)
                return error.message
            }
        }
        #expect(
            message("qwen2.5-7b-instrct")
                == "no profile named \"qwen2.5-7b-instrct\"; did you mean \"qwen2.5-7b-instruct\"? (see: agentron profile ls, or pass a path to a .yaml file)"
        )
        #expect(
            message("qwen")?.hasPrefix(
                "no profile named \"qwen\"; did you mean one of \"qwen2.5-1.5b-instruct\", \"qwen2.5-7b-instruct\"?")
                == true)
        #expect(
            message("mistral")?.hasPrefix(
                "no profile named \"mistral\"; available: llama-3.2-1b-instruct, qwen2.5-1.5b-instruct, qwen2.5-7b-instruct"
            ) == true)

        let empty = ProfileCatalog(builtinDirectory: nil, directories: [tree.root + "/none"])
        do throws(ProfileError) {
            _ = try empty.resolve("x")
        } catch {
            #expect(error.message.contains("no profiles found in \(tree.root)/none"))
        }
    }

    @Test func everyBuiltinProfileParses() throws {
        let catalog = ProfileCatalog(builtinDirectory: sourceProfilesDirectory, directories: [])
        let entries = catalog.entries()
        let expected = [
            "llama-3.2-1b-instruct", "llama-3.2-1b-instruct-tgi", "llama-3.2-3b-instruct", "llama-server",
            "llama3.2-1b-ollama", "qwen2.5-1.5b-instruct", "qwen2.5-1.5b-ollama", "qwen2.5-7b-instruct",
            "sglang-qwen2.5-1.5b-instruct",
        ]
        #expect(entries.map(\.name) == expected)
        for entry in entries {
            #expect(entry.error == nil, "\(entry.error?.description ?? "")")
            let profile = try #require(entry.profile)
            // Each file is named after its profile, so `agentron up <file name>` finds it.
            #expect(entry.path.hasSuffix("/\(profile.name).yaml"))
            #expect(entry.origin == .builtin)
            // And each survives a render and re-parse.
            var reparsed = try Profile.parse(yaml: profile.yamlText, file: entry.path)
            reparsed.source = profile.source
            #expect(reparsed == profile)
        }

        let server = try catalog.resolve("llama-server")
        #expect(server.engine == .command)
        #expect(server.command == ["llama-server", "-m", "{model}", "--host", "{host}", "--port", "{port}"])
        #expect(server.healthPath == "/health" && server.healthStatus == 200)
        let tgi = try catalog.resolve("llama-3.2-1b-instruct-tgi")
        #expect(tgi.image == "ghcr.io/huggingface/text-generation-inference:3.3.5")
        let vllm = try catalog.resolve("qwen2.5-1.5b-instruct")
        #expect(vllm.model == "Qwen/Qwen2.5-1.5B-Instruct")
        #expect(
            vllm.args == [
                "--max-model-len", "8192", "--gpu-memory-utilization", "0.90", "--enable-auto-tool-choice",
                "--tool-call-parser",
                "hermes",
            ])
        #expect(vllm.engine.driver.contextLength(vllm) == 8192)
        // Tool calling out of the box, with the parser vLLM's docs name for each family.
        for (name, parser) in [
            ("llama-3.2-1b-instruct", "llama3_json"), ("llama-3.2-3b-instruct", "llama3_json"),
            ("qwen2.5-1.5b-instruct", "hermes"), ("qwen2.5-7b-instruct", "hermes"),
        ] {
            let args = try catalog.resolve(name).args
            #expect(args.contains("--enable-auto-tool-choice"), "\(name)")
            #expect(args.firstIndex(of: "--tool-call-parser").map { args[$0 + 1] } == parser, "\(name)")
        }
        #expect(try catalog.resolve("llama3.2-1b-ollama").model == "llama3.2:1b")
        #expect(try catalog.resolve("qwen2.5-1.5b-ollama").model == "qwen2.5:1.5b")
    }
}
