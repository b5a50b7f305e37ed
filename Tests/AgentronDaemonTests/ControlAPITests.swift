import AgentronConfig
import AgentronCore
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

/// The control API in process: a `ControlAPI` over a real `ServerRegistry` in a temporary
/// directory, called through `handle(_:)` with the requests a client sends (no socket).
/// Servers run a real engine (`command`: Python's http.server, ready when `/` answers 200),
/// and everything a test starts is stopped in a `defer`, by the registry and then by pid.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ControlAPITests {
    /// A registry and its API over a private directory.
    final class Fixture: @unchecked Sendable {
        let root: String
        let paths: AgentronPaths
        let registry: ServerRegistry
        let api: ControlAPI
        let info = DaemonInfo(
            version: "9.9.9-test", pid: 4242, socket: "/tmp/test.sock", stateDirectory: "/tmp/state",
            startedAt: 1_700_000_000)
        /// In every engine's argv (a number: `sleep` adds it up), so `stop()` finds what the
        /// registry may have lost.
        let marker = "\(Int.random(in: 100_000...999_999)).25"

        init() throws {
            root = NSTemporaryDirectory() + "agentron-api-\(UUID().uuidString.prefix(8))"
            paths = AgentronPaths(
                runtimeDirectory: root + "/run", stateDirectory: root + "/state", configDirectory: root + "/config",
                profileDirectories: [])
            try FileManager.default.createDirectory(atPath: paths.logDirectory, withIntermediateDirectories: true)
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            let registrar = Registrar(
                config: RegistrarConfig(providersPath: root + "/config/providers.json"), logger: logger)
            registry = ServerRegistry(
                paths: paths, daemonEnvironment: ["PATH": "/usr/bin:/bin"], cgroups: nil, registrar: registrar,
                instance: "test", logger: logger)
            api = ControlAPI(registry: registry, daemonInfo: info)
        }

        func stop() async {
            await registry.shutdownAll()
            for pid in ServerRegistryTests.processes(containing: marker) { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(atPath: root)
        }

        /// A server that becomes ready: Python's http.server answers 200 on `/`.
        func webServer(_ name: String) -> Profile {
            var profile = Profile(name: name, engine: .command, model: "m")
            profile.command = ["/usr/bin/python3", "-c", Self.webScript, "{host}", "{port}", marker]
            profile.healthPath = "/"
            profile.stopTimeout = .seconds(5)
            profile.register = false
            return profile
        }

        /// A server that prints a secret and idles (never ready: nothing listens).
        func sleeper(_ name: String, printing text: String = "", env: [String: String] = [:]) -> Profile {
            var profile = Profile(name: name, engine: .command, model: "m", env: env)
            profile.command = ["/bin/sh", "-c", "echo \(text); exec sleep 300 \(marker)", "sleeper-on-{port}"]
            profile.stopTimeout = .seconds(2)
            profile.register = false
            return profile
        }

        /// http.server on the given address; it logs each request (the probes too) to stderr.
        static let webScript = """
            import http.server, sys
            handler = http.server.SimpleHTTPRequestHandler
            http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
            """

        func call(_ route: ControlRoute, body: [UInt8] = []) async -> Reply {
            let (path, query) = ControlRoute.split(target: route.target)
            return await call(route.method, path, query: query, body: body)
        }

        func call(_ method: String, _ target: String, body: [UInt8] = []) async -> Reply {
            let (path, query) = ControlRoute.split(target: target)
            return await call(method, path, query: query, body: body)
        }

        private func call(_ method: String, _ path: String, query: [String: String], body: [UInt8]) async -> Reply {
            Reply(await api.handle(ControlAPI.Request(method: method, path: path, query: query, body: body)))
        }

        func start(_ profile: Profile) async throws -> ServerInfo {
            let reply = await call(.start, body: Array(try JSONEncoder().encode(StartRequest(profile: profile))))
            #expect(reply.status == 201, "\(reply.text)")
            return try reply.decode(ServerInfo.self)
        }

        /// Long-polls (as `up` does) until the server settles or `seconds` pass.
        func settle(_ name: String, within seconds: Int = 30) async throws -> ServerInfo {
            var info = try await call(.inspect(name: name)).decode(ServerInfo.self)
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: .seconds(seconds))
            while !info.state.isSettled, clock.now < deadline {
                info = try await call(.wait(name: name, seconds: "5")).decode(ServerInfo.self)
            }
            return info
        }
    }

    /// A reply, flattened for checks: status, body, and the stream's first chunk.
    struct Reply {
        var status: Int
        var body: [UInt8]
        var isJSON: Bool
        var stream: AsyncStream<[UInt8]>? = nil

        init(_ reply: ControlAPI.Reply) {
            switch reply {
            case .json(let status, let body):
                self.status = status
                self.body = body
                isJSON = true
            case .text(let status, let body):
                self.status = status
                self.body = body
                isJSON = false
            case .stream(_, let body):
                status = 200
                self.body = []
                isJSON = false
                stream = body
            }
        }

        var text: String { String(decoding: body, as: UTF8.self) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONDecoder().decode(T.self, from: Data(body))
        }

        /// The error a non-2xx reply carries.
        var error: APIError? { try? decode(APIErrorEnvelope.self).error }
    }

    /// Runs `body` with a fresh fixture and stops everything it started, even when it throws.
    func withFixture(_ body: (Fixture) async throws -> Void) async throws {
        let fixture = try Fixture()
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    @Test func theDaemonRouteAnswersWhoItIs() async throws {
        try await withFixture { fixture in
            let reply = await fixture.call(.daemon)
            #expect(reply.status == 200 && reply.isJSON)
            let info = try reply.decode(DaemonInfo.self)
            #expect(info.version == "9.9.9-test" && info.pid == 4242 && info.socket == "/tmp/test.sock")
            #expect(reply.text.hasPrefix("{\"pid\":4242,"), "keys are sorted: \(reply.text)")
        }
    }

    @Test func listsAndProvidersOfAnEmptyDaemon() async throws {
        try await withFixture { fixture in
            for route in [ControlRoute.list(all: false), .list(all: true)] {
                let reply = await fixture.call(route)
                #expect(reply.status == 200)
                #expect(reply.text == #"{"servers":[]}"#)
            }
            let providers = await fixture.call(.providers)
            #expect(providers.status == 200)
            let kinds = try providers.decode(ProvidersStatus.self).targets.map(\.kind)
            #expect(kinds.contains(ProviderTarget.agentron), "\(kinds)")
        }
    }

    /// Every server route, in the order a user meets them: up, wait, ps, inspect, logs
    /// (and follow), down, ps --all, restart, rm, rm --force.
    @Test func everyServerRouteOnARealServer() async throws {
        try await withFixture { fixture in
            try await requirePython {
                let started = try await fixture.start(fixture.webServer("web"))
                #expect(started.name == "web" && started.engine == .command)

                let ready = try await fixture.settle("web")
                #expect(ready.state == .ready, "\(ready.reason ?? "")")
                let port = try #require(ready.port)
                #expect(ready.endpoint == "http://127.0.0.1:\(port)")

                #expect(
                    try await fixture.call(.list(all: false)).decode(ServerList.self).servers.map(\.name) == ["web"])
                let detailed = try await fixture.call(.inspect(name: "web")).decode(ServerInfo.self)
                #expect(detailed.profile?.command?.first == "/usr/bin/python3", "inspect carries the profile")
                #expect(detailed.history?.map(\.state).contains(.ready) == true)

                // The readiness probes are requests, which http.server logs.
                #expect(
                    await waitUntil {
                        await fixture.call(.logs(name: "web", tail: "10", follow: false)).text.contains("GET / HTTP")
                    })
                let logs = await fixture.call(.logs(name: "web", tail: "1", follow: false))
                #expect(logs.status == 200 && !logs.isJSON)
                #expect(logs.text.split(separator: "\n").count == 1, "tail=1 is one line: \(logs.text)")
                let follow = await fixture.call(.logs(name: "web", tail: "1", follow: true))
                var chunks = follow.stream?.makeAsyncIterator()
                let first = await chunks?.next()
                #expect(
                    first.map { String(decoding: $0, as: UTF8.self).hasPrefix("127.0.0.1") } == true,
                    "a follow starts with the tail")
                chunks = nil

                let stopped = await fixture.call(.stop(name: "web", timeout: "3s"))
                #expect(stopped.status == 200)
                #expect(try stopped.decode(ServerInfo.self).state == .stopped)
                #expect(
                    try await fixture.call(.list(all: false)).decode(ServerList.self).servers.isEmpty,
                    "ps hides stopped servers")
                #expect(try await fixture.call(.list(all: true)).decode(ServerList.self).servers.map(\.name) == ["web"])
                // A wait on a settled server returns at once, whatever the number.
                #expect(
                    try await fixture.call(.wait(name: "web", seconds: "1e300")).decode(ServerInfo.self).state
                        == .stopped)

                #expect(await fixture.call(.restart(name: "web")).status == 200)
                #expect(try await fixture.settle("web").state == .ready)
                let refused = await fixture.call(.remove(name: "web", force: false))
                #expect(refused.status == 409, "a running server is not removed without force: \(refused.text)")
                let removed = await fixture.call(.remove(name: "web", force: true))
                #expect(removed.status == 200)
                #expect(try removed.decode(ServerInfo.self).name == "web")
                #expect(await fixture.call(.inspect(name: "web")).status == 404, "gone once removed")
                #expect(
                    !FileManager.default.fileExists(atPath: fixture.paths.logDirectory + "/web.log"), "with its logs")
            }
        }
    }

    @Test func aStoppedServerIsRemovedWithoutForce() async throws {
        try await withFixture { fixture in
            _ = try await fixture.start(fixture.sleeper("idle", printing: "hello"))
            #expect(await fixture.call(.stop(name: "idle", timeout: "1s")).status == 200)
            let removed = await fixture.call(.remove(name: "idle", force: false))
            #expect(removed.status == 200, "\(removed.text)")
            #expect(try await fixture.call(.list(all: true)).decode(ServerList.self).servers.isEmpty)
        }
    }

    /// Secrets of the profile never leave through `logs`.
    @Test func logsBlankTheProfilesSecrets() async throws {
        try await withFixture { fixture in
            _ = try await fixture.start(
                fixture.sleeper("noisy", printing: "token=$HF_TOKEN", env: ["HF_TOKEN": "hf_s3cr3tvalue"]))
            // The daemon's own "starting" line comes first; wait for the engine's.
            #expect(
                await waitUntil {
                    await fixture.call(.logs(name: "noisy", tail: nil, follow: false)).text.split(separator: "\n")
                        .contains { $0.hasPrefix("token=") }
                })
            let logs = await fixture.call(.logs(name: "noisy", tail: nil, follow: false)).text
            #expect(!logs.contains("hf_s3cr3tvalue"), "\(logs)")
            #expect(logs.contains("token=<redacted>"), "\(logs)")
        }
    }

    @Test(arguments: [
        ("GET", "/"), ("GET", "/daemon"), ("GET", "/v2/daemon"), ("GET", "/v1"), ("GET", "/v1/nothing"),
        ("GET", "/v1/servers/a/b/c"), ("POST", "/v1/servers/a/pause"), ("GET", "/v1/daemon/extra"),
    ])
    func unknownPathsAre404(_ method: String, _ path: String) async throws {
        try await withFixture { fixture in
            let reply = await fixture.call(method, path)
            #expect(reply.status == 404)
            #expect(reply.error?.code == .notFound)
            #expect(reply.error?.message.contains(path) == true, "\(reply.text)")
        }
    }

    @Test(arguments: [
        ControlRoute.inspect(name: "ghost"), .wait(name: "ghost", seconds: "0"), .remove(name: "ghost", force: true),
        .stop(name: "ghost", timeout: nil), .restart(name: "ghost"), .logs(name: "ghost", tail: nil, follow: false),
    ])
    func unknownServersAre404NamingTheServer(_ route: ControlRoute) async throws {
        try await withFixture { fixture in
            let reply = await fixture.call(route)
            #expect(reply.status == 404, "\(route.method) \(route.target): \(reply.text)")
            #expect(reply.error?.code == .notFound)
            #expect(reply.error?.message.contains("\"ghost\"") == true, "\(reply.text)")
        }
    }

    /// A route's path with a method it does not take: 405, naming the ones it takes.
    @Test(arguments: [
        ("DELETE", "/v1/daemon", "GET"), ("POST", "/v1/providers", "GET"), ("PUT", "/v1/servers", "GET or POST"),
        ("DELETE", "/v1/servers", "GET or POST"), ("POST", "/v1/servers/web", "GET or DELETE"),
        ("PUT", "/v1/servers/web", "GET or DELETE"), ("GET", "/v1/servers/web/stop", "POST"),
        ("GET", "/v1/servers/web/restart", "POST"), ("POST", "/v1/servers/web/logs", "GET"),
        ("DELETE", "/v1/servers/web/logs", "GET"),
    ])
    func wrongMethodsAre405(_ method: String, _ path: String, _ allowed: String) async throws {
        try await withFixture { fixture in
            let reply = await fixture.call(method, path)
            #expect(reply.status == 405)
            #expect(reply.error?.code == .methodNotAllowed)
            #expect(reply.error?.message == "\(method) is not allowed on \(path); it takes \(allowed)", "\(reply.text)")
        }
    }

    /// Query values are the daemon's to check: a bad one is a 400 that names it, even for a
    /// server that does not exist; a number out of range is clamped, not refused.
    @Test func badQueryValuesAre400() async throws {
        try await withFixture { fixture in
            for wait in ["abc", "nan", "", "5s", "1,5"] {
                let reply = await fixture.call(.wait(name: "ghost", seconds: wait))
                #expect(reply.status == 400, "wait=\(wait): \(reply.text)")
                #expect(reply.error?.message.contains("invalid wait") == true, "\(reply.text)")
            }
            for timeout in ["abc", "-1s", "2y", "99999999999h", "1e300s", "inf"] {
                let reply = await fixture.call(.stop(name: "ghost", timeout: timeout))
                #expect(reply.status == 400, "timeout=\(timeout): \(reply.text)")
                #expect(reply.error?.message.contains("invalid timeout") == true, "\(reply.text)")
            }
            let clipped = await fixture.call(.wait(name: "ghost", seconds: String(repeating: "x", count: 10_000)))
            #expect(clipped.status == 400)
            #expect(clipped.text.count < 400, "an echoed value is clipped: \(clipped.text.count) bytes")

            _ = try await fixture.start(fixture.sleeper("quiet", printing: "one line"))
            for tail in ["-5", "abc", "1.5", "", "1e3"] {
                let reply = await fixture.call(.logs(name: "quiet", tail: tail, follow: false))
                #expect(reply.status == 400, "tail=\(tail): \(reply.text)")
                #expect(reply.error?.message.contains("invalid tail") == true, "\(reply.text)")
            }
            for tail in ["0", "99999999999999999999999", "9223372036854775807"] {
                #expect(
                    await fixture.call(.logs(name: "quiet", tail: tail, follow: false)).status == 200,
                    "tail=\(tail) is clamped")
            }
            for wait in ["-5", "1e-9", "0", "-inf"] {
                #expect(
                    await fixture.call(.wait(name: "quiet", seconds: wait)).status == 200, "wait=\(wait) is clamped")
            }
            #expect(await fixture.call(.stop(name: "quiet", timeout: "500ms")).status == 200)
        }
    }

    /// A body that is not a start request: 400, and the message says what is wrong with it.
    @Test func badBodiesAre400NamingTheProblem() async throws {
        try await withFixture { fixture in
            let valid =
                try JSONSerialization.jsonObject(with: JSONEncoder().encode(fixture.sleeper("ok"))) as? [String: Any]
                ?? [:]
            func body(_ change: (inout [String: Any]) -> Void) throws -> String {
                var profile = valid
                change(&profile)
                return String(decoding: try JSONSerialization.data(withJSONObject: ["profile": profile]), as: UTF8.self)
            }
            let cases: [(body: String, named: String)] = try [
                ("", "malformed request body"),
                ("{", "malformed request body"),
                ("[]", "malformed request body"),
                ("{}", "profile"),
                (#"{"profile": 5}"#, "profile"),
                (body { $0["name"] = nil }, "name"),
                (body { $0["engine"] = "warp-drive" }, "warp-drive"),
                (body { $0["port"] = "eighty" }, "port"),
                (body { $0["stopTimeout"] = "soon" }, "stopTimeout"),
                (body { $0["env"] = ["A": 1] }, "env"),
            ]
            for (text, named) in cases {
                let reply = await fixture.call(.start, body: Array(text.utf8))
                #expect(reply.status == 400, "\(text): \(reply.text)")
                #expect(reply.error?.code == .invalidRequest)
                #expect(reply.error?.message.contains(named) == true, "\(text): \(reply.text)")
            }
            #expect(
                try await fixture.call(.list(all: true)).decode(ServerList.self).servers.isEmpty, "nothing was started")
        }
    }

    /// A profile that decodes but breaks the limits a profile file meets: 400 naming the field.
    @Test func aProfileOutsideTheLimitsIsRefusedByField() async throws {
        try await withFixture { fixture in
            var profile = fixture.sleeper("fine")
            profile.name = "not a name!"
            let badName = await fixture.call(
                .start, body: Array(try JSONEncoder().encode(StartRequest(profile: profile))))
            #expect(badName.status == 400)
            #expect(badName.error?.message.contains("name") == true, "\(badName.text)")
            profile = fixture.sleeper("fine")
            profile.stopTimeout = .seconds(1e300)
            let badTimeout = await fixture.call(
                .start, body: Array(try JSONEncoder().encode(StartRequest(profile: profile))))
            #expect(badTimeout.status == 400)
            #expect(badTimeout.error?.message.contains("stop_timeout") == true, "\(badTimeout.text)")
            #expect(try await fixture.call(.list(all: true)).decode(ServerList.self).servers.isEmpty)
        }
    }
}

/// Runs `body`, which needs /usr/bin/python3 for its web server; without it the test is
/// cancelled, saying why (CI images have it).
func requirePython(_ body: () async throws -> Void) async throws {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
        print("skipped: /usr/bin/python3 is not installed, and the test's web server needs it")
        try Test.cancel("/usr/bin/python3 is not installed: the test's web server cannot run")
    }
    try await body()
}

/// Polls `condition` every 20 ms for up to 10 s; whether it held.
func waitUntil(_ condition: () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(10))
    while clock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}

/// Both ends speak through `ControlRoute`: what the client produces parses back to the same
/// route on the daemon, and the wire form is the one older CLIs send.
struct ControlRouteTests {
    static let routes: [ControlRoute] = [
        .daemon, .providers, .gateway, .list(all: false), .list(all: true), .start,
        .inspect(name: "llama-3.2-1b"), .wait(name: "llama", seconds: "0.25"), .wait(name: "llama", seconds: "1e+300"),
        .remove(name: "llama", force: false), .remove(name: "llama", force: true),
        .stop(name: "llama", timeout: nil), .stop(name: "llama", timeout: "30.0"), .stop(name: "llama", timeout: "2 m"),
        .restart(name: "q.w_e-r"), .connection(name: "qwen"), .logs(name: "llama", tail: nil, follow: false),
        .logs(name: "llama", tail: "100", follow: true),
        .logs(name: "llama", tail: "5", follow: false), .logs(name: "llama", tail: nil, follow: true),
        // Names and values no valid profile has still arrive whole.
        .inspect(name: "a/b"), .inspect(name: "sp ace?&=#%"), .inspect(name: "ünï"), .stop(name: "x", timeout: "a&b=c"),
        .wait(name: "x", seconds: ""),
    ]

    @Test(arguments: routes)
    func whatTheClientSendsParsesBackToTheSameRoute(_ route: ControlRoute) throws {
        let (path, query) = ControlRoute.split(target: route.target)
        #expect(
            try ControlRoute(method: route.method, path: path, query: query) == route, "\(route.method) \(route.target)"
        )
        #expect(route.target.hasPrefix(apiVersionPrefix + "/"))
        #expect(!route.target.contains(" ") && !route.target.contains("#"), "a valid request line: \(route.target)")
    }

    /// The requests a CLI of the previous release sent, byte for byte.
    @Test(arguments: [
        ("GET", "/v1/daemon", ControlRoute.daemon),
        ("GET", "/v1/providers", .providers),
        ("GET", "/v1/gateway", .gateway),
        ("GET", "/v1/servers", .list(all: false)),
        ("GET", "/v1/servers?all=true", .list(all: true)),
        ("POST", "/v1/servers", .start),
        ("GET", "/v1/servers/llama", .inspect(name: "llama")),
        ("GET", "/v1/servers/llama?wait=0.25", .wait(name: "llama", seconds: "0.25")),
        ("GET", "/v1/servers/llama?wait=5.0", .wait(name: "llama", seconds: "5.0")),
        ("DELETE", "/v1/servers/llama", .remove(name: "llama", force: false)),
        ("DELETE", "/v1/servers/llama?force=true", .remove(name: "llama", force: true)),
        ("POST", "/v1/servers/llama/stop", .stop(name: "llama", timeout: nil)),
        ("POST", "/v1/servers/llama/stop?timeout=30.0", .stop(name: "llama", timeout: "30.0")),
        ("POST", "/v1/servers/llama/restart", .restart(name: "llama")),
        ("GET", "/v1/servers/llama/connection", .connection(name: "llama")),
        ("GET", "/v1/servers/llama/logs?tail=100", .logs(name: "llama", tail: "100", follow: false)),
        ("GET", "/v1/servers/llama/logs?tail=100&follow=true", .logs(name: "llama", tail: "100", follow: true)),
    ])
    func theWireFormIsThePreviousReleases(_ method: String, _ target: String, _ route: ControlRoute) throws {
        #expect(route.method == method)
        #expect(route.target == target)
        let (path, query) = ControlRoute.split(target: target)
        #expect(try ControlRoute(method: method, path: path, query: query) == route)
    }

    /// What other clients (curl, scripts) may send: flags as `1` or bare, repeated or empty
    /// keys, doubled slashes; other flag values are false, as before.
    @Test func lenientFormsOtherClientsSend() throws {
        func parse(_ method: String, _ target: String) throws -> ControlRoute {
            let (path, query) = ControlRoute.split(target: target)
            return try ControlRoute(method: method, path: path, query: query)
        }
        #expect(try parse("GET", "/v1/servers?all=1") == .list(all: true))
        #expect(try parse("GET", "/v1/servers?all") == .list(all: true))
        #expect(try parse("GET", "/v1/servers?all=yes") == .list(all: false))
        #expect(try parse("GET", "/v1/servers?=&&all=true&") == .list(all: true))
        #expect(try parse("GET", "//v1//servers/") == .list(all: false))
        #expect(try parse("GET", "/v1/servers/x/logs?follow&tail=3") == .logs(name: "x", tail: "3", follow: true))
        #expect(try parse("GET", "/v1/servers/x?wait=1&wait=2") == .wait(name: "x", seconds: "2"))
        #expect(
            try parse("GET", "/v1/servers/x?wait") == .wait(name: "x", seconds: "true"),
            "a bare wait reaches the daemon's check")
        #expect(try parse("GET", "/v1/servers/a%2Fb") == .inspect(name: "a/b"))
        #expect(try parse("GET", "/v1/servers/x?wait=%35") == .wait(name: "x", seconds: "5"))
        #expect(
            try parse("GET", "/v1/servers/x?wait=%zz") == .wait(name: "x", seconds: "%zz"), "a bad escape stays as sent"
        )
        #expect(throws: ControlRoute.Mismatch.unversioned(path: "/v2/servers")) { try parse("GET", "/v2/servers") }
        #expect(throws: ControlRoute.Mismatch.unknownPath(method: "GET", path: "/v1/servers/x/y/z")) {
            try parse("GET", "/v1/servers/x/y/z")
        }
    }

    @Test func percentEncodingRoundTrips() {
        for text in ["plain-name_1.0", "a b", "100%", "ü", "a/b?c=d&e", "", "%%41"] {
            #expect(ControlRoute.percentDecoded(ControlRoute.percentEncoded(text)) == text)
        }
        #expect(ControlRoute.percentEncoded("llama-3.2_x") == "llama-3.2_x")
        #expect(ControlRoute.percentEncoded("a b/ü") == "a%20b%2F%C3%BC")
        #expect(ControlRoute.percentEncoded("\u{1}") == "%01")
        #expect(ControlRoute.percentDecoded("%4") == "%4" && ControlRoute.percentDecoded("%") == "%")
    }
}
