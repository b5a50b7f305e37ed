import Glibc
import Testing

@testable import AgentronCLI

/// units/ is the one copy of the systemd units: the CLI embeds it at build time (the
/// EmbedUnits plugin) and install only rewrites ExecStart.
struct UnitTemplatesTests {
    /// The repository, from this file's place in it: Tests/AgentronCLITests/<file>.
    static let sourceRoot = String(
        #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/"))

    static func unitFile(_ name: String) throws -> String {
        let path = sourceRoot + "/units/" + name
        let file = try #require(fopen(path, "rb"), "cannot open \(path)")
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            bytes += buffer[0..<count]
            if count < buffer.count { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test(arguments: [
        (EmbeddedUnits.systemService, "agentrond.service"),
        (EmbeddedUnits.userService, "agentrond-user.service"),
        (EmbeddedUnits.systemSocket, "agentrond.socket"),
        (EmbeddedUnits.userSocket, "agentrond-user.socket"),
    ])
    func theEmbeddedTextIsTheFileInUnits(embedded: String, file: String) throws {
        #expect(embedded == (try Self.unitFile(file)))
    }

    @Test(arguments: [false, true])
    func installRewritesOnlyExecStart(user: Bool) throws {
        let source = try Self.unitFile(user ? "agentrond-user.service" : "agentrond.service")
        let installed = UnitTemplates.service(user: user, agentrond: "/opt/my 100%/agentrond")
        let sourceLines = source.split(separator: "\n", omittingEmptySubsequences: false)
        let installedLines = installed.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(sourceLines.count == installedLines.count)
        let changed = zip(sourceLines, installedLines).filter { $0 != $1 }
        #expect(changed.count == 1)
        #expect(changed.first?.0.hasPrefix("ExecStart=") == true)
        #expect(changed.first?.1 == #"ExecStart="/opt/my 100%%/agentrond""#)
        #expect(
            UnitTemplates.socket(user: user) == (try Self.unitFile(user ? "agentrond-user.socket" : "agentrond.socket"))
        )
    }

    @Test func execStartPathsAreEscapedForSystemd() {
        #expect(UnitTemplates.execStartValue("/usr/local/bin/agentrond") == "/usr/local/bin/agentrond")
        #expect(UnitTemplates.execStartValue("/opt/$HOME/a%b") == "/opt/$$HOME/a%%b")
        #expect(UnitTemplates.execStartValue(#"/opt/a "b"\c"#) == #""/opt/a \"b\"\\c""#)
    }
}
