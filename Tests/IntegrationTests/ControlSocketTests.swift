import Foundation
import Testing

/// The control socket with answers longer than the socket's buffers (issue #14): `ps` of a
/// thousand servers is half a megabyte. The CLI reads them whole, and so does a client that
/// asks the daemon to close the connection after the answer (the daemon used to close it
/// before the last bytes had left).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ControlSocketTests {
    static let lines = 12_000
    static let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij"

    @Test func aLongAnswerArrivesWholeWithKeepAliveAndWithConnectionClose() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon()
        // An engine that writes 700 KB to its log (the socket buffers hold about 200 KB), then waits to be stopped ({port} unused).
        let profile = harness.home.appendingPathComponent("big.yaml")
        try """
        name: big
        engine: command
        model: big
        port: auto
        command: [/bin/sh, -c, "yes \(Self.line) | head -n \(Self.lines); exec sleep 300", sh, "{port}"]
        startup_timeout: 5m
        """.write(to: profile, atomically: true, encoding: .utf8)
        let up = try await harness.run(["up", profile.path, "--detach"])
        #expect(up.code == 0, "\(up.stderr)")

        func engineLines(_ text: String) -> Int {
            text.utf8.split(separator: UInt8(ascii: "\n")).lazy.filter { $0.elementsEqual(Self.line.utf8) }.count
        }
        var logs = try await harness.run(["logs", "big", "-n", "100000"])
        for _ in 0..<100 where engineLines(logs.stdout) < Self.lines {
            try await Task.sleep(for: .milliseconds(100))
            logs = try await harness.run(["logs", "big", "-n", "100000"])
        }
        #expect(logs.code == 0, "\(logs.stderr)")
        #expect(engineLines(logs.stdout) == Self.lines, "the CLI got the whole log")

        // A plain client asking for `Connection: close` gets every byte Content-Length promises.
        let client = """
            import socket, sys, time
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            s.sendall(b"GET /v1/servers/big/logs?tail=100000 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            time.sleep(1)  # a slow reader: the answer fills the socket buffers before it is read
            data = b""
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\\r\\n\\r\\n")
            length = [int(l.split(b":")[1]) for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")]
            print(length[0] if length else -1, len(body))
            """
        let result = try Harness.capture("/usr/bin/python3", ["-c", client, harness.socketPath])
        let numbers = result.output.split(separator: " ").compactMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(numbers.count == 2 && numbers[0] == numbers[1] && numbers[0] > 600_000, "\(result.output)")

        let down = try await harness.run(["down", "big"])
        #expect(down.code == 0, "\(down.stderr)")
    }
}
