import AgentronCore
import AgentronSystemd
import Glibc
import Logging
import Synchronization
import Testing

@Suite struct JournalTests {
    @Test func fieldsCarryMessagePriorityIdentifierLocationAndMetadata() {
        let fields = JournalLogHandler.fields(
            level: .warning, message: "probe failed",
            metadata: ["server": "llama", "engine": "vllm", "pid": "4242", "state": "unhealthy", "exit-code": "1"],
            identifier: "agentrond", file: "AgentronDaemon/Supervisor.swift", function: "probe()", line: 42)
        #expect(
            fields == [
                JournalField("MESSAGE", "probe failed engine=vllm exit-code=1 pid=4242 server=llama state=unhealthy"),
                JournalField("PRIORITY", "4"),
                JournalField("SYSLOG_IDENTIFIER", "agentrond"),
                JournalField("CODE_FILE", "AgentronDaemon/Supervisor.swift"),
                JournalField("CODE_LINE", "42"),
                JournalField("CODE_FUNC", "probe()"),
                JournalField("AGENTRON_ENGINE", "vllm"),
                JournalField("AGENTRON_EXIT_CODE", "1"),
                JournalField("AGENTRON_PID", "4242"),
                JournalField("AGENTRON_SERVER", "llama"),
                JournalField("AGENTRON_STATE", "unhealthy"),
            ])
    }

    @Test(arguments: [
        ("server", "AGENTRON_SERVER"),
        ("engine", "AGENTRON_ENGINE"),
        ("pid", "AGENTRON_PID"),
        ("state", "AGENTRON_STATE"),
        ("socket", "AGENTRON_SOCKET"),
        ("lastExit", "AGENTRON_LASTEXIT"),
        ("http.status", "AGENTRON_HTTP_STATUS"),
        ("größe", "AGENTRON_GR____E"),
        ("", "AGENTRON_"),
    ])
    func metadataKeysBecomeValidFieldNames(key: String, expected: String) {
        #expect(JournalLogHandler.fieldName(forMetadataKey: key) == expected)
    }

    @Test func fieldNamesStayWithinTheJournalLimit() {
        let name = JournalLogHandler.fieldName(forMetadataKey: String(repeating: "k", count: 100))
        #expect(name.count == 64)
        #expect(name.hasPrefix("AGENTRON_KKK"))
    }

    @Test func keysThatCollideKeepTheFirst() {
        let fields = JournalLogHandler.fields(
            level: .info, message: "m", metadata: ["a-b": "1", "a.b": "2"], identifier: "agentrond",
            file: "f", function: "g", line: 1)
        #expect(fields.filter { $0.name == "AGENTRON_A_B" } == [JournalField("AGENTRON_A_B", "1")])
    }

    @Test(arguments: [
        (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
    ])
    func levelsMapToSyslogPriorities(level: Logger.Level, priority: Int) {
        #expect(JournalLogHandler.priority(level) == priority)
    }

    @Test func handlerMergesItsMetadataTheProvidersAndTheCalls() throws {
        let captured = Mutex<[[JournalField]]>([])
        let provider = Logger.MetadataProvider { ["engine": "vllm", "server": "from-provider"] }
        var handler = JournalLogHandler(label: "agentrond", metadataProvider: provider) { fields in
            captured.withLock { $0.append(fields) }
        }
        handler[metadataKey: "server"] = "from-handler"
        handler[metadataKey: "pid"] = "7"
        var logger = Logger(label: "agentrond") { _ in handler }
        logger.logLevel = .debug
        logger.debug("spawned", metadata: ["server": "llama"])
        logger.trace("below the level")

        let entries = captured.withLock { $0 }
        try #require(entries.count == 1)
        let fields = Dictionary(entries[0].map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        #expect(fields["MESSAGE"] == "spawned engine=vllm pid=7 server=llama")
        #expect(fields["PRIORITY"] == "7")
        #expect(fields["SYSLOG_IDENTIFIER"] == "agentrond")
        #expect(fields["AGENTRON_SERVER"] == "llama")
        #expect(fields["AGENTRON_ENGINE"] == "vllm")
        #expect(fields["AGENTRON_PID"] == "7")
        #expect(fields["CODE_FILE"]?.hasSuffix("JournalTests.swift") == true)
        #expect(fields["CODE_FUNC"]?.hasPrefix("handlerMergesItsMetadata") == true)
        #expect(Int(fields["CODE_LINE"] ?? "") ?? 0 > 0)
    }

    @Test func journalStreamMustNameStderrItself() {
        #expect(Journal.matches(journalStream: "8:1234", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: "8:1235", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: "9:1234", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: "8", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: "8:1234:0", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: ":1234", device: 8, inode: 1234))
        #expect(!Journal.matches(journalStream: "", device: 8, inode: 1234))

        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return }
        #expect(Journal.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]))
        #expect(!Journal.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino &+ 1)"]))
        #expect(!Journal.stderrIsJournal(environment: [:]))
    }
}

@Suite struct SystemdStatusTests {
    @Test(
        arguments: [
            ([], "no servers"),
            ([.stopped, .stopped], "no servers"),
            ([.ready], "1 server: 1 ready"),
            ([.starting, .ready, .ready], "3 servers: 2 ready, 1 starting"),
            (
                [.failed, .unhealthy, .backoff, .stopping, .starting, .ready, .stopped],
                "6 servers: 1 ready, 1 starting, 1 unhealthy, 1 backoff, 1 stopping, 1 failed"
            ),
        ] as [([ServerState], String)])
    func oneLineSummary(states: [ServerState], expected: String) {
        #expect(SystemdStatus.line(states: states) == expected)
    }
}
