import AgentronHTTP
import Foundation
import Testing

/// What a hostile or broken client can do to the gateway (issue #12, "Bad input"): stall
/// mid-request, trickle a body, flood headers, send garbage. Each gets an error or a closed
/// connection; other clients are served meanwhile and the daemon lives on.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct GatewayBadInputTests {
    @Test func stalledFloodingAndGarbageClientsNeverStallOthers() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await GatewayTests.start(
            harness, environment: ["AGENTRON_GATEWAY_REQUEST_TIMEOUT": "2s"])
        let port = try #require(Int(gateway.split(separator: ":").last ?? ""))
        let up = try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"])
        #expect(up.code == 0, "\(up.stderr)")

        // Two clients that stall: one mid-headers, one mid-body after a byte at a time.
        let stalledHead = try TCPConnection(port: port)
        defer { stalledHead.close() }
        stalledHead.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        let trickler = try TCPConnection(port: port)
        defer { trickler.close() }
        trickler.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")

        // Meanwhile another client is answered at once.
        let started = ContinuousClock.now
        let answered = try await GatewayTests.post(gateway + "/v1/chat/completions", GatewayTests.chat("qwen"))
        #expect(answered.status == 200, "\(answered.bodyText)")
        #expect(ContinuousClock.now - started < .seconds(2), "not held up behind the stalled clients")

        // Garbage and a header flood: a 400 from the HTTP parser, or a closed connection.
        for request in [
            "\u{16}\u{03}\u{01}\u{02}\u{00} not http at all\r\n\r\n",
            "POST /v1/chat/completions HTTP/1.1\r\n"
                + (0..<3000).map { "X-Flood-\($0): \(String(repeating: "a", count: 60))\r\n" }.joined() + "\r\n",
            "GET /v1/models HTTP/9.9\r\nHost: x\r\n\r\n",
        ] {
            let reply = try await GatewayTests.rawExchange(gateway, request)
            #expect(reply.isEmpty || reply.hasPrefix("HTTP/1.1 4"), "\(reply.prefix(200))")
        }

        // The trickler keeps sending a byte now and then; it still has to finish in time.
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(500))
            trickler.send("x")
        }
        let closedHead = await Task.detached { stalledHead.receive(for: .seconds(5)) }.value
        let closedTrickle = await Task.detached { trickler.receive(for: .seconds(5)) }.value
        #expect(closedHead.closed, "a client stalled mid-headers is closed after the request timeout")
        #expect(closedTrickle.closed, "a client trickling its body is closed after the request timeout")

        let again = try await GatewayTests.post(gateway + "/v1/chat/completions", GatewayTests.chat("qwen"))
        #expect(again.status == 200)
        #expect(harness.daemon?.isRunning == true)
    }

    /// A keep-alive connection that goes quiet after its response is closed after the
    /// timeout too; one whose response takes longer than the timeout is not cut.
    @Test func theTimeoutCountsFromTheLastResponseNotDuringOne() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await GatewayTests.start(
            harness, environment: ["AGENTRON_GATEWAY_REQUEST_TIMEOUT": "1s"])
        let port = try #require(Int(gateway.split(separator: ":").last ?? ""))
        // Each token takes 0.2 s: a 12-token stream lasts about 2.4 s, past the 1 s timeout.
        let up = try await harness.run([
            "up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "slow", "--env",
            "FAKE_TOKEN_SECONDS=0.2",
        ])
        #expect(up.code == 0, "\(up.stderr)")
        let body =
            #"{"model":"slow","messages":[{"role":"user","content":"one two three four five six"}],"max_tokens":12,"stream":true}"#
        let client = try TCPConnection(port: port)
        defer { client.close() }
        client.send(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        let sent = ContinuousClock.now
        let reply = await Task.detached { client.receive(for: .seconds(6), until: "0\r\n\r\n") }.value
        #expect(ContinuousClock.now - sent > .seconds(1.2), "the stream outlasted the timeout")
        #expect(reply.text.hasPrefix("HTTP/1.1 200"), "\(reply.text.prefix(300))")
        #expect(reply.text.contains("data: [DONE]"), "the whole stream arrived: \(reply.text.suffix(300))")
        #expect(!reply.closed, "a response longer than the timeout is not cut")
        let quiet = await Task.detached { client.receive(for: .seconds(4)) }.value
        #expect(quiet.closed && quiet.text.isEmpty, "then, quiet for the timeout, the connection is closed")
    }

    /// HTTP/1.0 has no chunked bodies: a stream (length unknown) to a 1.0 client that asked
    /// for keep-alive ends with the connection, and says so.
    @Test func anHTTP10StreamEndsWithItsConnection() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        let gateway = try await GatewayTests.start(harness)
        let port = try #require(Int(gateway.split(separator: ":").last ?? ""))
        let up = try await harness.run(["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "qwen"])
        #expect(up.code == 0, "\(up.stderr)")
        let body = GatewayTests.chat("qwen", stream: true)
        let client = try TCPConnection(port: port)
        defer { client.close() }
        client.send(
            "POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let reply = await Task.detached { client.receive(for: .seconds(10)) }.value
        #expect(reply.closed, "the body's end is the connection's")
        #expect(reply.text.hasPrefix("HTTP/1.0 200"), "\(reply.text.prefix(200))")
        #expect(reply.text.lowercased().contains("connection: close"), "\(reply.text.prefix(300))")
        #expect(!reply.text.lowercased().contains("transfer-encoding"), "no chunks in HTTP/1.0")
        #expect(reply.text.hasSuffix("data: [DONE]\n\n"), "every event, unframed: \(reply.text.suffix(200))")
    }
}

/// A plain TCP client for bytes no HTTP client would send.
final class TCPConnection: @unchecked Sendable {
    // @unchecked: one test task uses it at a time.
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw HarnessError("cannot connect to 127.0.0.1:\(port)")
        }
    }

    func send(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// What arrives within `span` (or until `marker` is seen), and whether the peer closed.
    func receive(for span: Duration, until marker: String? = nil) -> (text: String, closed: Bool) {
        let deadline = ContinuousClock.now + span
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let milliseconds = Int32(
                max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&poller, 1, milliseconds) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<count]
            if let marker, String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    func close() { Glibc.close(fd) }
}
