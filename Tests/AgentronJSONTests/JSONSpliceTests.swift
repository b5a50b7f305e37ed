import AgentronJSON
import Testing

// Issue #4: an edit changes the items it is about and leaves every other byte of the owner's
// file exactly as it was.

@Suite(.timeLimit(.minutes(1)))
struct JSONSpliceTests {
    @Test func spliceKeepsLayoutAndMatchesIndentation() throws {
        let text = "{\n    \"providers\": [\n        {\"id\": \"x\"},\n        {\"id\": \"y\"}\n    ]\n}\n"
        let bytes = Array(text.utf8)
        let root = try JSONScanner.parse(bytes)
        let array = try #require(root.members(named: "providers").first?.node)
        let value = JSONValue.object([("id", .string("z")), ("n", .array([.number("1")]))])
        let out = JSONSplice(bytes: bytes, container: array).apply(
            edits: [.remove, .keep],
            append: [
                { indent, unit, multiline in JSONRender.render(value, indent: indent, unit: unit, multiline: multiline)
                }
            ])
        let expected = """
            {
                "providers": [
                    {"id": "y"},
                    {
                        "id": "z",
                        "n": [
                            1
                        ]
                    }
                ]
            }

            """
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    @Test func spliceIntoEmptyAndInlineContainers() throws {
        let empty = Array("{\"providers\": []}".utf8)
        let root = try JSONScanner.parse(empty)
        let array = try #require(root.members(named: "providers").first?.node)
        let out = JSONSplice(bytes: empty, container: array).apply(edits: [], append: [{ _, _, _ in "1" }])
        #expect(String(decoding: out, as: UTF8.self) == "{\"providers\": [\n  1\n]}")

        let inline = Array("[1, 2]".utf8)
        let list = try JSONScanner.parse(inline)
        let edited = JSONSplice(bytes: inline, container: list).apply(
            edits: [.keep, .remove], append: [{ _, _, _ in "3" }])
        #expect(String(decoding: edited, as: UTF8.self) == "[1, 3]")
        let cleared = JSONSplice(bytes: inline, container: list).apply(edits: [.remove, .remove], append: [])
        #expect(String(decoding: cleared, as: UTF8.self) == "[]")
    }

    /// A document written by hand, with its own spacing, escapes and number forms.
    static let handWritten =
        "\u{FEFF}{\n\t\"theme\" :\t\"dark\",   \"ratio\": 1.0e+00,\n\t\"providers\": [ {\"id\": \"a\"},\n\t\t{\"id\" : \"b\", \"note\": \"caf\\u00e9\"} ],\n\t\"tail\": [1,2 ,3]\n}\n"

    @Test func replacingOneMemberLeavesEveryOtherByte() throws {
        let bytes = Array(Self.handWritten.utf8)
        let root = try JSONScanner.parse(bytes)
        let ratio = try #require(root.members(named: "ratio").first)
        let out = JSONSplice(bytes: bytes, container: root).apply(
            edits: root.items.map { $0.key == "ratio" ? .replace({ _, _, _ in #""ratio": 2"# }) : .keep }, append: [])

        #expect(Array(out[..<ratio.range.lowerBound]) == Array(bytes[..<ratio.range.lowerBound]))
        let tail = bytes.count - ratio.range.upperBound
        #expect(Array(out.suffix(tail)) == Array(bytes[ratio.range.upperBound...]))
        #expect(out.count == bytes.count - ratio.range.count + #""ratio": 2"#.utf8.count)
        let again = try JSONScanner.parse(out)
        #expect(again.value["ratio"]?.same(as: .number("2")) == true)
        #expect(again.value["theme"]?.stringValue == "dark")
    }

    @Test func editingANestedArrayLeavesTheRestOfTheDocument() throws {
        let bytes = Array(Self.handWritten.utf8)
        let root = try JSONScanner.parse(bytes)
        let providers = try #require(root.members(named: "providers").first?.node)
        let out = JSONSplice(bytes: bytes, container: providers).apply(
            edits: [.remove, .keep], append: [{ _, _, _ in #"{"id": "c"}"# }])

        // Outside the array: identical, byte for byte.
        #expect(Array(out[..<providers.range.lowerBound]) == Array(bytes[..<providers.range.lowerBound]))
        let after = bytes.count - providers.range.upperBound
        #expect(Array(out.suffix(after)) == Array(bytes[providers.range.upperBound...]))
        // Inside it: the kept element keeps its own bytes, escapes included.
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains(#"{"id" : "b", "note": "caf\u00e9"}"#))
        #expect(!text.contains(#""a""#))
        let again = try JSONScanner.parse(out)
        let ids = try #require(again.members(named: "providers").first?.node).items.map {
            $0.node.value["id"]?.stringValue
        }
        #expect(ids == ["b", "c"])
    }

    @Test func keepingEveryItemReturnsTheSameBytes() throws {
        let bytes = Array(Self.handWritten.utf8)
        let root = try JSONScanner.parse(bytes)
        for item in root.items where item.node.isArray || item.node.isObject {
            let out = JSONSplice(bytes: bytes, container: item.node).apply(
                edits: Array(repeating: .keep, count: item.node.items.count), append: [])
            #expect(out == bytes)
        }
        #expect(
            JSONSplice(bytes: bytes, container: root).apply(edits: root.items.map { _ in .keep }, append: []) == bytes)
    }

    @Test func removingTheMiddleItemKeepsTheOthersSeparators() throws {
        let bytes = Array("[1,  2,\t3]".utf8)
        let root = try JSONScanner.parse(bytes)
        let out = JSONSplice(bytes: bytes, container: root).apply(edits: [.keep, .remove, .keep], append: [])
        #expect(String(decoding: out, as: UTF8.self) == "[1,\t3]")
    }

    @Test func theIndentUnitComesFromTheDocument() throws {
        let tabs = Array("{\n\t\"a\": [\n\t\t1\n\t]\n}".utf8)
        let root = try JSONScanner.parse(tabs)
        #expect(JSONSplice.indentUnit(tabs, container: root) == "\t")
        let array = try #require(root.members(named: "a").first?.node)
        #expect(JSONSplice(bytes: tabs, container: array).indentUnit() == "\t")
        #expect(JSONSplice.lineIndent(tabs, at: array.range.lowerBound) == "\t")

        let inline = Array(#"{"a": []}"#.utf8)
        let flat = try JSONScanner.parse(inline)
        #expect(JSONSplice.indentUnit(inline, container: flat) == nil)
        var splice = JSONSplice(bytes: inline, container: flat)
        splice.fallbackUnit = "    "
        #expect(splice.indentUnit() == "    ")
    }

    @Test func renderQuotesWhatJSONRequires() {
        #expect(JSONRender.quote("a\"b\\c\n\u{01}é") == #""a\"b\\c\n\u0001é""#)
        let value = JSONRender.sortedObject([
            ("b", .bool(true)), ("a", .null), ("c", .array([.number("1"), .string("x")])),
        ])
        #expect(
            JSONRender.render(value, indent: "", unit: "  ", multiline: false)
                == #"{"a": null, "b": true, "c": [1, "x"]}"#)
        #expect(
            JSONRender.render(value, indent: "", unit: "  ", multiline: true)
                == "{\n  \"a\": null,\n  \"b\": true,\n  \"c\": [\n    1,\n    \"x\"\n  ]\n}")
        #expect(JSONRender.render(.object([]), indent: "", unit: "  ", multiline: true) == "{}")
    }
}
