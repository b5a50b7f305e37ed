import Foundation
import Testing

@testable import AgentronHTTP

/// Real peers, real sockets: each test starts a Python server (PeerServer.swift) and stops
/// it in a `defer`. Serialized because the thread-count and timing checks must not share
/// the machine with each other.
@Suite(.serialized)
struct HTTPClientTests {

    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct OverTCP {
        @Test func getReturnsStatusHeadersAndBody() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()

            let response = try await client.execute(HTTPRequest(url: server.url("/hello")))

            #expect(response.status == 200)
            #expect(response.bodyText == "hello world")
            #expect(response.header("Content-Type") == "text/plain")
            #expect(response.header("Content-Length") == "11")
            try await expectNoTransfersLeft(client)
        }

        @Test func postSendsJSONBody() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let json = #"{"name":"llama","port":8001}"#

            let response = try await HTTPClient.shared.execute(
                HTTPRequest(
                    method: "POST", url: server.url("/echo"),
                    headers: [(name: "Content-Type", value: "application/json")],
                    body: Array(json.utf8), timeout: .seconds(10)))

            #expect(response.status == 200)
            #expect(response.bodyText == json)
            #expect(response.header("content-type") == "application/json")
            #expect(response.header("x-method") == "POST")
        }

        @Test func otherMethodsAndLargeBodies() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            // A few MB, above curl's Expect: 100-continue threshold, which must stay off.
            let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }

            let put = try await client.execute(HTTPRequest(method: "PUT", url: server.url("/echo"), body: big))
            #expect(put.status == 200)
            #expect(put.header("X-Method") == "PUT")
            #expect(put.header("X-Expect") == "")
            #expect(put.body == big)

            let delete = try await client.execute(HTTPRequest(method: "DELETE", url: server.url("/echo")))
            #expect(delete.header("X-Method") == "DELETE")

            let emptyPost = try await client.execute(HTTPRequest(method: "POST", url: server.url("/echo")))
            #expect(emptyPost.status == 200)
            #expect(emptyPost.body.isEmpty)
            try await expectNoTransfersLeft(client)
        }

        @Test(arguments: [404, 500])
        func errorStatusesAreResponsesNotErrors(status: Int) async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }

            let response = try await HTTPClient.shared.execute(HTTPRequest(url: server.url("/status/\(status)")))

            #expect(response.status == status)
            #expect(response.bodyText == "status \(status)")
        }

        @Test func headerLookupIgnoresCase() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }

            let response = try await HTTPClient.shared.execute(HTTPRequest(url: server.url("/hello")))

            #expect(response.headers.contains { $0.name == "X-Mixed-Case" })
            #expect(response.header("x-mixed-case") == "Value-1")
            #expect(response.header("X-MIXED-CASE") == "Value-1")
            #expect(response.header("X-Absent") == nil)
        }

        @Test func proxyEnvironmentIsIgnored() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            // Nothing listens on the "proxy"; going through it would fail to connect.
            setenv("http_proxy", "http://127.0.0.1:\(server.closedPort)", 1)
            setenv("HTTP_PROXY", "http://127.0.0.1:\(server.closedPort)", 1)
            defer {
                unsetenv("http_proxy")
                unsetenv("HTTP_PROXY")
            }

            let response = try await HTTPClient.shared.execute(HTTPRequest(url: server.url("/env-proxy-check")))

            #expect(response.bodyText == "direct")
        }

        @Test func closedPortIsConnectionRefused() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let url = "http://127.0.0.1:\(server.closedPort)/health"

            let error = await #expect(throws: HTTPClientError.self) {
                try await client.execute(HTTPRequest(url: url, timeout: .seconds(5)))
            }

            #expect(error == .connectionRefused(HTTPTarget(method: "GET", url: url)))
            #expect(error?.description == "GET \(url): connection refused")
            try await expectNoTransfersLeft(client)
        }

        @Test func silentServerTimesOut() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let start = ContinuousClock.now

            let error = await #expect(throws: HTTPClientError.self) {
                try await client.execute(HTTPRequest(url: server.url("/never"), timeout: .milliseconds(500)))
            }

            let elapsed = ContinuousClock.now - start
            guard case .timedOut(_, let after) = error else {
                Issue.record("expected timedOut, got \(String(describing: error))")
                return
            }
            #expect(after >= .milliseconds(450))
            #expect(elapsed < .seconds(3))
            #expect(error?.description.contains("/never: timed out after") == true)
            try await expectNoTransfersLeft(client)
        }

        @Test func closeWithoutReplyIsEmptyReply() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }

            let error = await #expect(throws: HTTPClientError.self) {
                try await HTTPClient.shared.execute(HTTPRequest(url: server.url("/close"), timeout: .seconds(5)))
            }

            #expect(error == .emptyReply(HTTPTarget(method: "GET", url: server.url("/close"))))
        }

        @Test func cancellationAbortsAnInFlightRequestPromptly() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let request = HTTPRequest(url: server.url("/never"))
            let task = Task { try await client.execute(request) }
            // Let it connect and send; the server now holds the request forever.
            try await waitUntil { CurlEventLoop.shared.inFlightCount.load(ordering: .relaxed) > 0 }

            let start = ContinuousClock.now
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }

            // Promptly: not after the server's 300 s, not after a poll interval.
            #expect(ContinuousClock.now - start < .seconds(1))
            try await expectNoTransfersLeft(client)
        }

        @Test func cancelledBeforeSubmitNeverStarts() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let task = Task {
                while !Task.isCancelled { await Task.yield() }
                return try await client.execute(HTTPRequest(url: server.url("/hello")))
            }
            task.cancel()

            await #expect(throws: CancellationError.self) { try await task.value }
            try await expectNoTransfersLeft(client)
        }

        @Test func manyConcurrentRequestsShareOneThread() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let count = 200
            // Warm up: the event thread starts on first use, the cooperative pool on demand.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask { _ = try await client.execute(HTTPRequest(url: server.url("/hello"))) }
                }
                try await group.waitForAll()
            }
            let threadsBefore = try threadCount()
            let sampler = Task {
                var peak = (threads: 0, inFlight: 0)
                while !Task.isCancelled {
                    peak.threads = max(peak.threads, (try? threadCount()) ?? 0)
                    peak.inFlight = max(peak.inFlight, CurlEventLoop.shared.inFlightCount.load(ordering: .relaxed))
                    try? await Task.sleep(for: .milliseconds(2))
                }
                return peak
            }

            let bodies = try await withThrowingTaskGroup(of: (Int, HTTPResponse).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let request = HTTPRequest(url: server.url("/echo-path/\(index)"), timeout: .seconds(30))
                        return (index, try await client.execute(request))
                    }
                }
                var bodies: [Int: String] = [:]
                for try await (index, response) in group {
                    #expect(response.status == 200)
                    bodies[index] = response.bodyText
                }
                return bodies
            }
            sampler.cancel()
            let peak = await sampler.value

            #expect(bodies.count == count)
            #expect((0..<count).allSatisfy { bodies[$0] == "/echo-path/\($0)" })
            #expect(peak.inFlight >= 20, "requests should have overlapped, peak in flight: \(peak.inFlight)")
            #expect(peak.threads - threadsBefore <= 2, "threads: \(threadsBefore) before, \(peak.threads) at peak")
            #expect(try threadNames().filter { $0 == "agentron-curl" }.count == 1)
            try await expectNoTransfersLeft(client)
        }

        @Test func streamDeliversChunksAsTheyArrive() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let start = ContinuousClock.now

            let response = try await client.stream(HTTPRequest(url: server.url("/stream")))
            // The head arrives before the body is done (the server sleeps 1.5 s mid-body).
            #expect(ContinuousClock.now - start < .seconds(1))
            #expect(response.status == 200)
            #expect(response.header("transfer-encoding") == "chunked")

            var chunks: [(text: String, at: Duration)] = []
            for try await chunk in response.body {
                chunks.append((String(decoding: chunk, as: UTF8.self), ContinuousClock.now - start))
            }

            #expect(chunks.map(\.text).joined() == "first\nsecond\n")
            let first = try #require(chunks.first)
            #expect(first.text == "first\n")
            #expect(first.at < .seconds(1))
            let last = try #require(chunks.last)
            #expect(last.at >= .milliseconds(1400))
            try await expectNoTransfersLeft(client)
        }

        @Test func leavingTheStreamAbortsTheTransfer() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()

            // In a function of its own so the response, and with it the stream, is released.
            func readTwoChunks() async throws -> Int {
                let response = try await client.stream(HTTPRequest(url: server.url("/forever")))
                var seen = 0
                for try await _ in response.body {
                    seen += 1
                    if seen == 2 { break }
                }
                return seen
            }
            #expect(try await readTwoChunks() == 2)

            try await expectNoTransfersLeft(client)
            // The server noticed the closed connection: the transfer really stopped.
            try await waitUntil {
                let stats = try await client.execute(HTTPRequest(url: server.url("/stats")))
                return stats.bodyText == #"{"aborted": 1}"#
            }
        }

        @Test func cancellingTheConsumerAbortsTheStream() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()
            let response = try await client.stream(HTTPRequest(url: server.url("/forever")))
            let consumer = Task {
                var seen = 0
                for try await _ in response.body { seen += 1 }
                return seen
            }
            try await Task.sleep(for: .milliseconds(200))

            consumer.cancel()
            _ = await consumer.result

            try await expectNoTransfersLeft(client)
            try await waitUntil {
                let stats = try await client.execute(HTTPRequest(url: server.url("/stats")))
                return stats.bodyText == #"{"aborted": 1}"#
            }
        }

        @Test func streamThrowsErrorsBeforeTheHead() async throws {
            let server = try PeerServer.start(.tcp)
            defer { server.stop() }
            let client = HTTPClient()

            let error = await #expect(throws: HTTPClientError.self) {
                try await client.stream(HTTPRequest(url: "http://127.0.0.1:\(server.closedPort)/logs"))
            }

            guard case .connectionRefused = error else {
                Issue.record("expected connectionRefused, got \(String(describing: error))")
                return
            }
            try await expectNoTransfersLeft(client)
        }
    }

    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct OverUnixSocket {
        @Test func getOverUnixSocket() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }
            let client = HTTPClient()

            let response = try await client.execute(
                HTTPRequest(url: "http://localhost/hello", unixSocketPath: server.socketPath))

            #expect(response.status == 200)
            #expect(response.bodyText == "hello world")
            #expect(response.header("x-mixed-case") == "Value-1")
            try await expectNoTransfersLeft(client)
        }

        @Test func postOverUnixSocket() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }
            let json = #"{"profile":"llama"}"#

            let response = try await HTTPClient.shared.execute(
                HTTPRequest(
                    method: "POST", url: "http://localhost/v1/servers", unixSocketPath: server.socketPath,
                    headers: [(name: "Content-Type", value: "application/json")], body: Array(json.utf8)))

            #expect(response.status == 200)
            #expect(response.bodyText == json)
            #expect(response.header("Content-Type") == "application/json")
        }

        @Test func streamOverUnixSocket() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }

            let response = try await HTTPClient.shared.stream(
                HTTPRequest(url: "http://localhost/stream", unixSocketPath: server.socketPath))
            var text = ""
            for try await chunk in response.body { text += String(decoding: chunk, as: UTF8.self) }

            #expect(response.status == 200)
            #expect(text == "first\nsecond\n")
        }

        @Test func missingSocketIsConnectionRefused() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }
            let path = server.directory + "/absent.sock"

            let error = await #expect(throws: HTTPClientError.self) {
                try await HTTPClient.shared.execute(
                    HTTPRequest(url: "http://localhost/v1/servers", unixSocketPath: path))
            }

            #expect(
                error
                    == .connectionRefused(
                        HTTPTarget(method: "GET", url: "http://localhost/v1/servers", unixSocketPath: path)))
            #expect(
                error?.description
                    == "GET http://localhost/v1/servers on unix socket \(path): connection refused (socket missing or nothing listening on it)"
            )
        }

        @Test func peerCheckLetsTheAllowedUserThrough() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }
            let client = HTTPClient()

            let response = try await client.execute(
                HTTPRequest(
                    url: "http://localhost/hello", unixSocketPath: server.socketPath, allowedPeerUIDs: [getuid()]))

            #expect(response.status == 200)
            #expect(response.bodyText == "hello world")
            try await expectNoTransfersLeft(client)
        }

        /// A listener running as a uid the request does not allow gets nothing: not the
        /// head, not the body (which would carry a profile's env secrets).
        @Test func peerCheckRefusesAnotherUserBeforeSendingAnything() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }
            let client = HTTPClient()
            let stranger = getuid() == 65534 ? 65533 : UInt32(65534)
            let url = "http://localhost/v1/servers"

            let error = await #expect(throws: HTTPClientError.self) {
                try await client.execute(
                    HTTPRequest(
                        method: "POST", url: url, unixSocketPath: server.socketPath,
                        body: Array(#"{"secret":"s3cr3t"}"#.utf8),
                        allowedPeerUIDs: [stranger]))
            }

            #expect(
                error
                    == .untrustedPeer(
                        HTTPTarget(method: "POST", url: url, unixSocketPath: server.socketPath), uid: getuid()))
            #expect(error?.description.contains("the listener runs as uid \(getuid())") == true)
            let seen = try await client.execute(
                HTTPRequest(url: "http://localhost/requests", unixSocketPath: server.socketPath))
            #expect(seen.bodyText == #"{"requests": 1}"#, "only /requests itself reached the server")
            try await expectNoTransfersLeft(client)
        }

        @Test func socketWithoutListenerIsConnectionRefused() async throws {
            let server = try PeerServer.start(.unix)
            defer { server.stop() }

            let error = await #expect(throws: HTTPClientError.self) {
                try await HTTPClient.shared.execute(
                    HTTPRequest(url: "http://localhost/v1/servers", unixSocketPath: server.deadSocketPath))
            }

            guard case .connectionRefused = error else {
                Issue.record("expected connectionRefused, got \(String(describing: error))")
                return
            }
        }
    }
}

// MARK: - Helpers

/// Every Transfer of this client has been freed (and with it its curl handle): nothing leaks
/// on success, error, cancellation or an abandoned stream. Polls briefly because a stream
/// released on one thread is torn down on the event thread.
private func expectNoTransfersLeft(_ client: HTTPClient, sourceLocation: SourceLocation = #_sourceLocation)
    async throws
{
    try await waitUntil(sourceLocation: sourceLocation) { client.liveTransfers.load(ordering: .relaxed) == 0 }
}

private func waitUntil(
    timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("condition not met within \(timeout)", sourceLocation: sourceLocation)
}

/// Threads of this process right now.
private func threadCount() throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
}

private func threadNames() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { id in
        (try? String(contentsOfFile: "/proc/self/task/\(id)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
