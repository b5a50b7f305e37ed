import AgentronConfig
import AgentronCore
import Testing

@testable import AgentronExport

/// The manifests' YAML: each string is written so that YAML 1.1 (what Kubernetes reads)
/// takes it back as that string, and every document reads back as the tree it came from.
@Suite struct YAMLScalarTests {
    /// Whether `node`, read back by the project's YAML reader, is `manifest`.
    static func matches(_ node: YAMLNode, _ manifest: Manifest) -> Bool {
        switch (manifest, node.content) {
        case (.string(let text), .scalar):
            return node.scalarValue == .string(text)
        case (.int(let number), .scalar):
            return node.scalarValue == .int(number)
        case (.bool(let flag), .scalar):
            return node.scalarValue == .bool(flag)
        case (.list(let items), .sequence(let nodes)):
            return items.count == nodes.count && zip(nodes, items).allSatisfy { matches($0, $1) }
        case (.list(let items), .scalar("[]", _)):
            return items.isEmpty
        case (.map(let pairs), .mapping(let entries)):
            return pairs.count == entries.count
                && zip(entries, pairs).allSatisfy { $0.key.scalarValue == .string($1.0) && matches($0.value, $1.1) }
        case (.map(let pairs), .scalar("{}", _)):
            return pairs.isEmpty
        default:
            return false
        }
    }

    /// The documents of a stream, each read back on its own (the reader takes one); a
    /// header of comments before the first `---` is skipped.
    static func documents(_ stream: String) throws -> [YAMLNode] {
        let parts = ("\n" + stream).split(separator: "\n---\n", omittingEmptySubsequences: true)
        let documents = parts.filter { part in
            part.split(separator: "\n").contains { !$0.hasPrefix("#") }
        }
        return try documents.map { try YAMLNode.load(String($0)) }
    }

    static let yaml11NonStrings = [
        "8192", "0.90", "0x1F", "0777", "1_000", "+5", ".5", "-.5", "-3", "1e3", "12:30", "2024-01-01", "y", "Y", "n",
        "N", "yes", "No", "on", "OFF", "true", "False", "null", "~", "", ".inf", "-.Inf", ".nan", "<<", "=",
    ]

    static let plainStrings = [
        "vllm/vllm-openai:v0.32.0", "--max-model-len", "/health", "hermes", "Qwen/Qwen2.5-1.5B-Instruct", "-m",
        "llama3_json", "inference-server", "nvidia.com/gpu", "-x", "yess", "nulls",
    ]

    @Test(arguments: yaml11NonStrings)
    func stringsYAMLWouldReadAsOtherValuesAreDoubleQuoted(_ text: String) {
        #expect(Manifest.scalar(text) == "\"\(text)\"")
        let manifest = Manifest.map([("value", .string(text)), ("args", .list([.string(text)]))])
        #expect(manifest.yaml == "value: \"\(text)\"\nargs:\n  - \"\(text)\"\n")
    }

    @Test(arguments: plainStrings)
    func ordinaryStringsAreWrittenPlain(_ text: String) {
        #expect(Manifest.scalar(text) == text)
        #expect(Manifest.map([("value", .string(text))]).yaml == "value: \(text)\n")
    }

    @Test func stringsWithBreaksCommentsAndEdgeSpacesAreQuotedAndReadBack() throws {
        let quoted = ["a: b", "x #y", "tab\there", "line\nbreak", " lead", "trail ", "#", "- x", "[x]", "*ref", "key:"]
        let plain = ["say \"hi\"", "back\\slash", "a:b", "x#y"]
        for text in quoted + plain {
            let written = Manifest.scalar(text)
            #expect(written.hasPrefix("\"") == quoted.contains(text), "\(text.debugDescription) → \(written)")
            let node = try YAMLNode.load("v: \(written)\n")
            #expect(Self.matches(node, .map([("v", .string(text))])), "\(text.debugDescription) → \(written)")
        }
    }

    @Test func aHandBuiltManifestReadsBackAsItsTree() throws {
        let manifest = Manifest.map([
            ("apiVersion", .string("v1")),
            ("count", .int(3)),
            ("enabled", .bool(false)),
            ("args", .list(Self.yaml11NonStrings.map(Manifest.string) + Self.plainStrings.map(Manifest.string))),
            ("empty", .list([])),
            ("none", .map([])),
            (
                "entries",
                .list([
                    .map([("name", .string("A")), ("value", .string("8192"))]),
                    .map([("name", .string("B")), ("valueFrom", .map([("key", .string("y"))]))]),
                    .list([.string("nested"), .int(1)]),
                    .string("plain"),
                ])
            ),
            ("nvidia.com/gpu", .int(2)),
        ])
        let node = try YAMLNode.load(manifest.yaml)
        #expect(Self.matches(node, manifest), "\(manifest.yaml)")
        #expect(manifest["entries", 1, "valueFrom", "key"]?.text == "y")
        #expect(manifest["entries", 9] == nil)
        #expect(manifest["count", "x"] == nil)
    }

    /// A list item whose first value is a map, as in `- exec: {command: [...]}`: the map
    /// must be indented under its key, not under the dash's column.
    @Test func aListItemWhoseFirstValueIsAMapReadsBack() throws {
        let manifest = Manifest.map([
            (
                "probes",
                .list([.map([("exec", .map([("command", .list([.string("true")]))])), ("periodSeconds", .int(5))])])
            )
        ])
        let node = try YAMLNode.load(manifest.yaml)
        #expect(Self.matches(node, manifest), "\(manifest.yaml)")
    }

    /// The same for a list item whose first value is a list, as in `- args: [a, b]`.
    @Test func aListItemWhoseFirstValueIsAListReadsBack() throws {
        let manifest = Manifest.map([
            ("containers", .list([.map([("args", .list([.string("a"), .string("b")])), ("name", .string("x"))])]))
        ])
        let node = try YAMLNode.load(manifest.yaml)
        #expect(Self.matches(node, manifest), "\(manifest.yaml)")
    }

    @Test func aTopLevelListOfMapsReadsBack() throws {
        let manifest = Manifest.list([
            .map([("name", .string("a")), ("sub", .map([("k", .string("v"))]))]),
            .map([("name", .string("b")), ("items", .list([.int(1), .string("2")]))]),
        ])
        #expect(Self.matches(try YAMLNode.load(manifest.yaml), manifest), "\(manifest.yaml)")
    }

    @Test func everyExportReadsBackAsItsManifests() throws {
        var profiles = Fixture.everyEngine
        profiles.append(Fixture.vllm(args: ["--gpu-memory-utilization", "0.90", "--seed", "0777", "--flag", "yes"]))
        profiles.append(Fixture.ollama(env: ["OLLAMA_CONTEXT_LENGTH": "8192", "OLLAMA_NUM_PARALLEL": "1"]))
        for profile in profiles {
            let result = try Fixture.export(profile, KubernetesOptions(namespace: "ml", replicas: 2))
            let stream = Manifest.stream(result.documents, header: "# agentron export\n")
            #expect(stream.hasPrefix("# agentron export\n---\n"))
            let nodes = try Self.documents(stream)
            #expect(nodes.count == result.documents.count, "\(profile.engine)")
            for (node, document) in zip(nodes, result.documents) {
                #expect(Self.matches(node, document), "\(profile.engine):\n\(document.yaml)")
            }
        }
    }

    @Test func numbersInArgsAndEnvironmentStayStrings() throws {
        let profile = Fixture.vllm(args: ["--max-model-len", "8192", "--gpu-memory-utilization", "0.90"])
        let text = try Fixture.export(profile).text
        #expect(text.contains("- \"8192\"\n"))
        #expect(text.contains("- \"0.90\"\n"))
        #expect(text.contains("- --max-model-len\n"))
        #expect(text.contains("image: vllm/vllm-openai:v0.32.0\n"))
        #expect(text.contains("path: /health\n"))
        #expect(text.contains("containerPort: 8000\n"), "a number stays a number")
        let ollama = try Fixture.export(Fixture.ollama(env: ["OLLAMA_CONTEXT_LENGTH": "8192"])).text
        #expect(ollama.contains("value: \"8192\"\n"))
        #expect(ollama.contains("value: \"-1\"\n"))
    }
}
