import AgentronCore
import Testing

@testable import AgentronCLI

/// What the CLI prints, from fixed values: tables, `--json`, and the small formats in them.
struct RenderingTests {
    static let now = 1_700_000_000.0

    static func server(
        _ name: String, state: ServerState, reason: String? = nil, pid: Int32? = nil, port: Int? = nil,
        startedAt: Double? = nil, since: Double = now - 5, restarts: Int = 0
    ) -> ServerInfo {
        ServerInfo(
            name: name, engine: .vllm, model: "org/\(name)", servedModel: name,
            endpoint: port.map { "http://127.0.0.1:\($0)" }, port: port, state: state, reason: reason, pid: pid,
            startedAt: startedAt, since: since, restarts: restarts, lastExit: nil, lastLogLine: nil)
    }

    @Test func psTable() {
        var llama = Self.server("llama", state: .ready, pid: 4242, port: 8001, startedAt: Self.now - 125, restarts: 2)
        llama.idleSeconds = 130
        llama.ttlSeconds = 600
        var busy = Self.server("busy", state: .ready, pid: 7, port: 8002, startedAt: Self.now - 60)
        busy.requestsInFlight = 2
        busy.idleSeconds = 0
        let servers = [
            llama, busy,
            Self.server("qwen", state: .failed, reason: "engine exited with status 1", since: Self.now - 7200),
            Self.server("tiny", state: .starting, pid: 99, port: 31001, startedAt: Self.now - 3),
        ]
        let expected = """
            NAME   ENGINE  MODEL      ENDPOINT                STATE                                 AGE  RESTARTS  PID   REQUESTS
            llama  vllm    org/llama  http://127.0.0.1:8001   ready                                 2m   2         4242  idle 2m/10m
            busy   vllm    org/busy   http://127.0.0.1:8002   ready                                 1m   0         7     2 in flight
            qwen   vllm    org/qwen   -                       failed (engine exited with status 1)  2h   0         -     -
            tiny   vllm    org/tiny   http://127.0.0.1:31001  starting                              3s   0         99    -

            """
        #expect(ServerPs.render(servers, now: Self.now) == expected)
    }

    @Test func psTableOfNothingIsItsHeader() {
        #expect(
            ServerPs.render([], now: Self.now) == "NAME  ENGINE  MODEL  ENDPOINT  STATE  AGE  RESTARTS  PID  REQUESTS\n"
        )
    }

    /// A long failure reason is clipped so the table stays readable; only failing states
    /// show one.
    @Test func psClipsLongReasons() {
        let reason = String(repeating: "x", count: 100)
        let table = ServerPs.render(
            [
                Self.server("a", state: .backoff, reason: reason),
                Self.server("b", state: .ready, reason: "not shown for a ready server"),
            ], now: Self.now)
        #expect(table.contains("backoff (" + String(repeating: "x", count: 59) + "…)"))
        #expect(!table.contains("not shown"))
    }

    @Test func psJSON() throws {
        let list = ServerList(servers: [
            Self.server("llama", state: .ready, pid: 4242, port: 8001, startedAt: Self.now - 1)
        ])
        let text = String(decoding: try #require(Output.jsonBytes(list)), as: UTF8.self)
        let expected = """
            {
              "servers" : [
                {
                  "endpoint" : "http://127.0.0.1:8001",
                  "engine" : "vllm",
                  "model" : "org/llama",
                  "name" : "llama",
                  "pid" : 4242,
                  "port" : 8001,
                  "restarts" : 0,
                  "servedModel" : "llama",
                  "since" : 1699999995,
                  "startedAt" : 1699999999,
                  "state" : "ready"
                }
              ]
            }

            """
        #expect(text == expected)
        #expect(
            String(decoding: try #require(Output.jsonBytes(ServerList(servers: []))), as: UTF8.self)
                == "{\n  \"servers\" : [\n\n  ]\n}\n")
    }

    @Test func tablesPadToTheWidestCell() {
        var table = Table(header: ["A", "LONG HEADER", "C"])
        table.rows = [["wide cell", "x", "last column is not padded"], ["", "", ""]]
        #expect(
            table.render() == """
                A          LONG HEADER  C
                wide cell  x            last column is not padded
                                        

                """)
    }

    @Test(arguments: [
        (0.0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (86399, "23h"), (86400, "1d"), (-30, "0s"),
    ])
    func ages(_ ago: Double, _ text: String) {
        #expect(Format.age(since: Self.now - ago, now: Self.now) == text)
    }

    @Test func elapsedAndBytes() {
        #expect(Format.elapsed(.milliseconds(12_345)) == "12.3s")
        #expect(Format.elapsed(.milliseconds(999)) == "0.9s")
        #expect(Format.elapsed(.seconds(125)) == "2m5s")
        #expect(Format.bytes(512) == "512 B")
        #expect(Format.bytes(1_234_567) == "1.2 MB")
        #expect(Format.bytes(2_500_000_000) == "2.5 GB")
        #expect(Format.bytes(150_000_000) == "150 MB")
    }

    @Test func upProgressDescribesAPull() {
        let progress = EngineProgress(phase: "downloading 2bada8a7", completed: 1_200_000_000, total: 2_500_000_000)
        #expect(UpProgress.describe(progress, bar: false) == "downloading 2bada8a7 48% 1.2 GB/2.5 GB")
        #expect(
            UpProgress.describe(progress, bar: true) == "downloading 2bada8a7 [#########-----------] 48% 1.2 GB/2.5 GB")
        #expect(UpProgress.describe(EngineProgress(phase: "pulling manifest"), bar: true) == "pulling manifest")
    }

    @Test func providersTableAndNotes() {
        let status = ProvidersStatus(targets: [
            ProviderTarget(
                kind: ProviderTarget.agentron, path: "/home/u/.config/agentron/providers.json", enabled: true,
                entries: [
                    ProviderEntryView(
                        id: "llama", provider: "vllm", endpoint: "http://127.0.0.1:8001/v1", model: "llama",
                        status: "ready", hasApiKey: false)
                ]),
            ProviderTarget(kind: ProviderTarget.openClaw, path: nil, enabled: false, entries: []),
        ])
        let text = ProviderList.render(status)
        #expect(
            text.hasPrefix(
                "TARGET    PATH                                     ID     MODEL  ENDPOINT                  STATUS\n"),
            "\(text)")
        #expect(
            text.contains(
                "agentron  /home/u/.config/agentron/providers.json  llama  llama  http://127.0.0.1:8001/v1  ready\n"))
        #expect(text.contains("openclaw: off (set AGENTRON_OPENCLAW_CONFIG=<path to openclaw.json> for agentrond)"))
    }
}
