import AgentronJSON
import Testing

// The scanner behind the registrar's edits of shared files (issue #4): strict JSON, errors
// that point at the byte, and ranges exact enough to splice by.

@Suite(.timeLimit(.minutes(1)))
struct JSONScannerTests {
    @Test func parsesStrictJSONWithRanges() throws {
        let text = #"  {"a": [1, -2.5e3, true, null], "b": {"c": "x\"\u00e9\ud83d\ude00"}}  "#
        let root = try JSONScanner.parse(Array(text.utf8))
        #expect(root.isObject)
        #expect(root.items.map(\.key) == ["a", "b"])
        let a = try #require(root.members(named: "a").first)
        #expect(String(decoding: Array(text.utf8)[a.range], as: UTF8.self) == #""a": [1, -2.5e3, true, null]"#)
        #expect(a.node.items.count == 4)
        #expect(root.value["b"]?["c"]?.stringValue == "x\"é😀")
        #expect(a.node.value.same(as: .array([.number("1"), .number("-2.5e3"), .bool(true), .null])))
    }

    @Test(arguments: [
        ("{\"a\": 1,}", 1),
        ("{\n  // a comment\n  \"a\": 1\n}", 2),
        ("{\n\"a\": 1\n\n'b': 2}", 4),
        ("{\"a\": 01}", 1),
        ("{\"a\": \"tab\there\"}", 1),
        ("[1, 2", 1),
        ("{\"a\": 1} x", 1),
        ("{a: 1}", 1),
        ("", 1),
    ])
    func refusesWhatIsNotStrictJSON(text: String, line: Int) throws {
        let error = try #require(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(text.utf8)) }
        #expect(error.line == line, "\(error)")
        #expect(error.description.hasPrefix("not valid JSON at line \(line)"))
    }

    @Test func semanticEqualityIgnoresMemberOrder() throws {
        let a = try JSONScanner.parse(Array(#"{"x": 1, "y": [2, {"z": "w"}]}"#.utf8)).value
        let b = try JSONScanner.parse(Array(#"{"y": [2, {"z": "w"}], "x": 1}"#.utf8)).value
        let c = try JSONScanner.parse(Array(#"{"y": [{"z": "w"}, 2], "x": 1}"#.utf8)).value
        #expect(a.same(as: b))
        #expect(!a.same(as: c))
    }

    /// The position points at the offending byte, so an owner can find it in their file.
    @Test(arguments: [
        ("{\"a\": 1,}", 1, 9, "expected a quoted member name"),
        ("{\n  \"a\": tru\n}", 2, 8, "expected a value"),
        ("[\"abc", 1, 2, "unterminated string"),
        ("[\"a\\x\"]", 1, 4, "invalid escape"),
        ("{\"a\" 1}", 1, 6, "expected ':'"),
        ("[1 2]", 1, 4, "expected ',' or ']'"),
        ("[1.]", 1, 4, "digits expected after '.'"),
        ("[1e]", 1, 4, "digits expected in the exponent"),
        ("[-]", 1, 3, "invalid number"),
        ("\n\n  [1] [2]", 3, 7, "after the document"),
    ])
    func reportsLineAndColumn(text: String, line: Int, column: Int, message: String) throws {
        let error = try #require(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(text.utf8)) }
        #expect(error.line == line, "\(error)")
        #expect(error.column == column, "\(error)")
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func invalidUTF8IsRefusedWhereItStarts() throws {
        let bytes: [UInt8] = Array("{\"a\": \"ok".utf8) + [0xFF] + Array("\"}".utf8)
        let error = try #require(throws: JSONSyntaxError.self) { try JSONScanner.parse(bytes) }
        #expect(error.line == 1)
        #expect(error.column == 8, "\(error)")
        #expect(error.message.contains("invalid UTF-8"))
    }

    @Test func refusesDocumentsNestedDeeperThanTheLimit() throws {
        let depth = JSONScanner.maxDepth
        let deepest = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let root = try JSONScanner.parse(Array(deepest.utf8))
        #expect(root.isArray)

        let tooDeep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        let error = try #require(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(tooDeep.utf8)) }
        #expect(error.message.contains("nested more than \(depth) levels deep"))
        #expect(error.column == depth + 1)

        // Objects count as levels too, and a hostile document far past the limit is refused
        // the same way instead of exhausting the stack.
        let objects = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(objects.utf8)) }
    }

    @Test(arguments: [
        (#""\u00e9""#, "\u{E9}"),
        (#""\u00E9""#, "\u{E9}"),
        (#""\ud83d\ude00""#, "\u{1F600}"),
        (#""\u0000""#, "\u{0}"),
        (#""a\/b\\c\"d\b\f\n\r\t""#, "a/b\\c\"d\u{08}\u{0C}\n\r\t"),
        ("\"é😀\"", "é😀"),
    ])
    func decodesEscapes(text: String, expected: String) throws {
        let node = try JSONScanner.parse(Array(text.utf8))
        #expect(node.value.stringValue == expected)
        #expect(node.range == 0..<text.utf8.count)
    }

    @Test(arguments: [#""\ud83d""#, #""\ude00""#, #""\ud83d\u0041""#, #""\ud83d x""#, #""\u12G4""#, #""\u12""#])
    func refusesBrokenUnicodeEscapes(text: String) throws {
        let error = try #require(throws: JSONSyntaxError.self) { try JSONScanner.parse(Array(text.utf8)) }
        #expect(error.line == 1, "\(error)")
    }

    @Test func numbersKeepTheirSourceText() throws {
        let root = try JSONScanner.parse(Array("[1.50, -0, 1E+2, 0.0e-0]".utf8))
        #expect(root.value.same(as: .array([.number("1.50"), .number("-0"), .number("1E+2"), .number("0.0e-0")])))
    }

    @Test func aByteOrderMarkIsAllowedAndKept() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array(#"{"a": 1}"#.utf8)
        let root = try JSONScanner.parse(bytes)
        #expect(root.range == 3..<bytes.count)
        #expect(JSONScanner.isBlank([0xEF, 0xBB, 0xBF, 0x20, 0x0A]))
        #expect(JSONScanner.isBlank([]))
        #expect(JSONScanner.isBlank(Array(" \t\r\n".utf8)))
        #expect(!JSONScanner.isBlank(Array(" {}".utf8)))
    }

    @Test func duplicateMembersAreKeptAndTheLastWins() throws {
        let root = try JSONScanner.parse(Array(#"{"a": 1, "b": 2, "a": 3}"#.utf8))
        #expect(root.members(named: "a").count == 2)
        #expect(root.value["a"]?.same(as: .number("3")) == true)
        #expect(root.value["missing"] == nil)
    }

    // The gateway's reading of a request body: only the members it routes by are built.

    @Test func membersFindsTopLevelNamesAndSkipsTheRest() throws {
        let text =
            #"{"messages": [{"role": "user", "model": "inner", "content": "a\"b\u00e9"}], "#
            + #""n": -1.5e-3, "ok": true, "no": null, "model": "first", "stream": false, "model": "qwen"}"#
        let bytes = Array(text.utf8)
        let found = try #require(try JSONScanner.members(["model", "stream", "absent"], of: bytes))
        #expect(found["model"]?.value.stringValue == "qwen")
        #expect(found["stream"]?.value.same(as: .bool(false)) == true)
        #expect(found["absent"] == nil)
        let range = try #require(found["model"]?.range)
        #expect(String(decoding: bytes[range], as: UTF8.self) == #""qwen""#)
        #expect(try JSONScanner.members(["model"], of: Array("{}".utf8))?.isEmpty == true)
    }

    @Test func membersOfANonObjectIsNil() throws {
        #expect(try JSONScanner.members(["model"], of: Array(#"["model", 1]"#.utf8)) == nil)
        #expect(try JSONScanner.members(["model"], of: Array(#""model""#.utf8)) == nil)
    }

    @Test(arguments: [
        #"{"model": "x", "a": [1, 2,]}"#,
        #"{"model": "x"} trailing"#,
        #"{"model": "x", "a": "unterminated}"#,
        #"{"model": "x", "a": "bad \q escape"}"#,
        #"{"model": "x", "a": 01}"#,
        #"{"model": "x", "a": tru}"#,
        #"{"a": {"b" 1}, "model": "x"}"#,
        "{\"a\": \"tab\there\"}",
        "",
    ])
    func membersRefusesWhatIsNotStrictJSON(text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.members(["model"], of: Array(text.utf8)) }
    }

    @Test func membersRefusesDocumentsNestedDeeperThanTheLimit() {
        let deep =
            "{\"a\": " + String(repeating: "[", count: JSONScanner.maxDepth + 1)
            + String(repeating: "]", count: JSONScanner.maxDepth + 1) + "}"
        #expect(throws: JSONSyntaxError.self) { try JSONScanner.members(["model"], of: Array(deep.utf8)) }
    }
}
