import Foundation

/// A real HTTP peer for the client tests: a small Python 3 stdlib server in its own process,
/// over TCP on 127.0.0.1 (ephemeral port) or over a Unix socket. Every test starts one and
/// stops it by pid in a `defer`; the script also exits when its stdin closes, so a crashed
/// test run leaves nothing behind either.
struct PeerServer {
    enum Transport { case tcp, unix }

    let process: Process
    let directory: String
    /// TCP: the listening port, and one that was bound and closed again (nothing listens).
    var port = 0
    var closedPort = 0
    /// Unix: the listening socket, and a socket file nobody listens on.
    var socketPath = ""
    var deadSocketPath = ""

    static func start(_ transport: Transport) throws -> PeerServer {
        // Unix socket paths are limited to 107 bytes, so stay out of a long $TMPDIR.
        var template = Array("/tmp/agentron-http-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw PeerServerError("mkdtemp failed") }
        let directory = String(cString: created)
        let script = directory + "/peer.py"
        try peerScript.write(toFile: script, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var server = PeerServer(process: process, directory: directory)
        switch transport {
        case .tcp:
            process.arguments = ["python3", script, "tcp"]
        case .unix:
            server.socketPath = directory + "/peer.sock"
            server.deadSocketPath = directory + "/dead.sock"
            process.arguments = ["python3", script, "unix", server.socketPath, server.deadSocketPath]
        }
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardInput = Pipe()  // held open by us; EOF means we are gone
        try process.run()

        // The script prints one line once it is listening.
        var output = Data()
        while !output.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty {
                server.stop()
                throw PeerServerError("peer server exited before it was ready")
            }
            output.append(chunk)
        }
        let fields = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        if transport == .tcp {
            guard fields.count == 2, let port = Int(fields[0]), let closedPort = Int(fields[1]) else {
                server.stop()
                throw PeerServerError("unexpected peer output: \(fields)")
            }
            server.port = port
            server.closedPort = closedPort
        }
        return server
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct PeerServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private let peerScript = #"""
    import http.server, json, os, socket, socketserver, sys, threading, time

    aborted = 0
    aborted_lock = threading.Lock()
    requests = 0  # requests whose head arrived: a refused peer check must leave this alone

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass  # quiet, and Unix-socket peers have no address to print

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def chunked_head(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def chunk(self, data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def do_GET(self):
            global aborted, requests
            with aborted_lock:
                requests += 1
            path = self.path
            if path == "/hello":
                self.reply(200, b"hello world", [("Content-Type", "text/plain"), ("X-Mixed-Case", "Value-1")])
            elif path.startswith("/status/"):
                code = int(path.split("/")[2])
                self.reply(code, b"status %d" % code)
            elif path.startswith("/echo-path/"):
                self.reply(200, path.encode())
            elif path == "/env-proxy-check":
                self.reply(200, b"direct")
            elif path == "/never":
                time.sleep(300)  # accepts, reads the request, never answers
            elif path == "/close":
                self.close_connection = True  # closes without a byte
            elif path == "/stream":
                self.chunked_head()
                self.chunk(b"first\n")
                time.sleep(1.5)
                self.chunk(b"second\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/forever":
                self.chunked_head()
                try:
                    while True:
                        self.chunk(b"tick\n")
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    with aborted_lock:
                        aborted += 1
                    self.close_connection = True
            elif path == "/requests":
                self.reply(200, json.dumps({"requests": requests}).encode(), [("Content-Type", "application/json")])
            elif path == "/stats":
                self.reply(200, json.dumps({"aborted": aborted}).encode(), [("Content-Type", "application/json")])
            else:
                self.reply(404, b"not found")

        def do_POST(self):
            global requests
            with aborted_lock:
                requests += 1
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.reply(200, body, [
                ("Content-Type", self.headers.get("Content-Type", "")),
                ("X-Method", self.command),
                ("X-Expect", self.headers.get("Expect", "")),
            ])

        do_PUT = do_POST
        do_DELETE = do_POST

    class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 1024  # 200 concurrent connects must not overflow the backlog

    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True
        request_queue_size = 1024

    def exit_when_parent_goes():
        sys.stdin.read()
        os._exit(0)

    if sys.argv[1] == "tcp":
        server = TCPServer(("127.0.0.1", 0), Handler)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        ready = "%d %d" % (server.server_address[1], closed_port)
    else:
        server = UnixServer(sys.argv[2], Handler)
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(sys.argv[3])  # the file stays; nobody listens on it
        dead.close()
        ready = "ready"

    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    print(ready, flush=True)
    server.serve_forever()
    """#
