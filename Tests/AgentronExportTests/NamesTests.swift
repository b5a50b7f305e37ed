import AgentronCore
import Testing

@testable import AgentronExport

/// Server names as Kubernetes object names and model ids as label values
/// (`KubernetesNames`).
@Suite struct NamesTests {
    /// DNS-1035 label: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63.
    static func isDNS1035Label(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
        let lower: (UInt8) -> Bool = { $0 >= 97 && $0 <= 122 }
        let digit: (UInt8) -> Bool = { $0 >= 48 && $0 <= 57 }
        return lower(first) && (lower(last) || digit(last)) && bytes.allSatisfy { lower($0) || digit($0) || $0 == 45 }
    }

    /// Label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
    static func isLabelValue(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last else { return true }
        let alphanumeric: (UInt8) -> Bool = {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57)
        }
        return bytes.count <= 63 && alphanumeric(first) && alphanumeric(last)
            && bytes.allSatisfy { alphanumeric($0) || $0 == 45 || $0 == 46 || $0 == 95 }
    }

    /// Deterministic text from a mixed alphabet: letters, digits, punctuation, spaces,
    /// non-ASCII letters and digits, emoji, combining marks, the Kelvin sign.
    static func generatedNames(count: Int) -> [String] {
        let alphabet: [String] = [
            "a", "z", "Q", "K", "0", "9", "-", "_", ".", "/", ":", " ", "@", "é", "ß", "İ", "\u{212A}", "٣", "１", "😀",
            "\u{301}", "ﬁ", "\t", "--", "Ω", "x", "7", "=",
        ]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        return (0..<count).map { _ in
            let length = next() % 100
            return (0..<length).map { _ in alphabet[next() % alphabet.count] }.joined()
        }
    }

    @Test(arguments: [
        ("qwen2.5-1.5b-instruct", "qwen2-5-1-5b-instruct"),
        ("Qwen2.5-7B-Instruct", "qwen2-5-7b-instruct"),
        ("llama3.2-1b-ollama", "llama3-2-1b-ollama"),
        ("my_server", "my-server"),
        ("a..b--c__", "a-b-c"),
        ("7b-chat", "m-7b-chat"),
        ("-x-", "x"),
        ("___", "m"),
        ("", "m"),
        ("ok", "ok"),
    ])
    func objectNamesAreDNS1035Labels(_ name: String, _ expected: String) {
        #expect(KubernetesNames.objectName(name) == expected)
    }

    @Test func aNameStartingWithADigitGetsALetterFirst() {
        let name = KubernetesNames.objectName("1b-model")
        #expect(name.first?.isLetter == true)
        #expect(name.hasSuffix("1b-model"))
    }

    @Test func aLongNameIsCutAndEndsWithAHashOfTheWhole() {
        let base = String(repeating: "abcdefghij", count: 7)
        let first = KubernetesNames.objectName(base + "-first")
        let second = KubernetesNames.objectName(base + "-second")
        for name in [first, second] {
            #expect(name.count <= 63, "\(name)")
            #expect(Self.isDNS1035Label(name), "\(name)")
        }
        #expect(first != second, "two long names that share their start stay apart")
        #expect(first.hasSuffix("-" + String(KubernetesNames.fnv1a(base + "-first"), radix: 16)))
        #expect(first.hasPrefix("abcdefghij"))
        #expect(KubernetesNames.objectName(String(repeating: "a", count: 63)) == String(repeating: "a", count: 63))
        #expect(KubernetesNames.objectName(String(repeating: "a", count: 64)).count <= 63)
        #expect(KubernetesNames.objectName(String(repeating: "a", count: 64)) != String(repeating: "a", count: 63))
    }

    @Test func everyNameBecomesAValidAndStableObjectName() {
        let inputs =
            Self.generatedNames(count: 3000) + [
                String(repeating: "-", count: 200), String(repeating: "9", count: 200),
                String(repeating: "é", count: 80),
                String(repeating: "a-", count: 40), "\u{212A}elvin", "😀", "1", "Ab" + String(repeating: ".", count: 70),
            ]
        for input in inputs {
            let name = KubernetesNames.objectName(input)
            #expect(Self.isDNS1035Label(name), "\(input.debugDescription) → \(name)")
            #expect(KubernetesNames.objectName(name) == name, "a valid name is kept: \(name)")
        }
    }

    @Test func labelValuesKeepTheModelIdReadable() {
        #expect(KubernetesNames.labelValue("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen_Qwen2.5-1.5B-Instruct")
        #expect(KubernetesNames.labelValue("llama3.2:1b") == "llama3.2_1b")
        #expect(KubernetesNames.labelValue("/models/x.gguf") == "models_x.gguf")
        #expect(KubernetesNames.labelValue("hf.co/org/repo-GGUF:Q4_K_M") == "hf.co_org_repo-GGUF_Q4_K_M")
        let long = KubernetesNames.labelValue("org/" + String(repeating: "M", count: 100))
        #expect(long.count == 63)
        #expect(long.hasPrefix("org_MMM"))
    }

    @Test func everyTextBecomesAValidLabelValue() {
        for input in Self.generatedNames(count: 3000) + ["___", "._-", "é", "a/", String(repeating: "x.", count: 40)] {
            let value = KubernetesNames.labelValue(input)
            #expect(Self.isLabelValue(value), "\(input.debugDescription) → \(value)")
        }
    }

    @Test func twoProfilesThatMakeTheSameNameAreRefused() {
        let dotted = Fixture.vllm(name: "qwen2.5")
        let dashed = Fixture.vllm(name: "qwen2-5")
        #expect(throws: ExportError.nameClash("qwen2.5", "qwen2-5", name: "qwen2-5")) {
            try KubernetesExport.export([dotted, dashed], options: KubernetesOptions())
        }
        let error = ExportError.nameClash("qwen2.5", "qwen2-5", name: "qwen2-5")
        #expect(error.description.contains("\"qwen2-5\""))
    }

    @Test func profilesWithDistinctNamesExportInOrder() throws {
        let profiles = [Fixture.vllm(name: "b-server"), Fixture.tgi(name: "a-server"), Fixture.ollama(name: "c")]
        let results = try KubernetesExport.export(profiles, options: KubernetesOptions())
        #expect(results.map { $0.deployment?["metadata", "name"]?.text } == ["b-server", "a-server", "c"])
    }

    @Test func theBatchExportChecksTheOptionsFirst() {
        #expect(throws: ExportError.self) {
            try KubernetesExport.export([Fixture.vllm()], options: KubernetesOptions(replicas: 0))
        }
    }
}
