import AgentronCore
import Foundation
import Testing

@testable import AgentronClient

/// `ControlClient` against a small real server on a Unix socket: the requests it sends are
/// the routes' wire form, and every way a reply can go wrong becomes one clear error.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ControlClientTests {
    /// Every request is answered 404 with its own request line as the error's message, so
    /// what the client sent comes back as the error it throws.
    @Test func theClientSendsEachRoutesWireForm() async throws {
        let peer = try ControlPeer.start(mode: "echo")
        defer { peer.stop() }
        let client = ControlClient(socketPath: peer.socketPath)
        func sent(_ call: () async throws -> Void) async -> String? {
            do {
                try await call()
                return nil
            } catch {
                guard case .api(let apiError) = error as? ClientError else { return "\(error)" }
                return apiError.message
            }
        }
        #expect(await sent { _ = try await client.daemonInfo() } == "GET /v1/daemon")
        #expect(await sent { _ = try await client.providers() } == "GET /v1/providers")
        #expect(await sent { _ = try await client.list(all: false) } == "GET /v1/servers")
        #expect(await sent { _ = try await client.list(all: true) } == "GET /v1/servers?all=true")
        #expect(await sent { _ = try await client.inspect("llama") } == "GET /v1/servers/llama")
        #expect(await sent { _ = try await client.wait("llama", seconds: 0.25) } == "GET /v1/servers/llama?wait=0.25")
        #expect(await sent { _ = try await client.stop("llama", timeout: nil) } == "POST /v1/servers/llama/stop")
        #expect(
            await sent { _ = try await client.stop("llama", timeout: .seconds(30)) }
                == "POST /v1/servers/llama/stop?timeout=30.0")
        #expect(await sent { _ = try await client.remove("llama", force: false) } == "DELETE /v1/servers/llama")
        #expect(
            await sent { _ = try await client.remove("llama", force: true) } == "DELETE /v1/servers/llama?force=true")
        #expect(await sent { _ = try await client.restart("llama") } == "POST /v1/servers/llama/restart")
        #expect(await sent { _ = try await client.logs("llama", tail: 5) } == "GET /v1/servers/llama/logs?tail=5")
        #expect(
            await sent { _ = try await client.followLogs("llama", tail: 7) }
                == "GET /v1/servers/llama/logs?tail=7&follow=true")
        #expect(
            await sent { _ = try await client.inspect("a b/c") } == "GET /v1/servers/a%20b%2Fc",
            "a name is percent-encoded")
        let profile = Profile(name: "llama", engine: .vllm, model: "org/llama")
        let start = await sent { _ = try await client.start(profile) }
        #expect(start?.hasPrefix("POST /v1/servers application/json {\"profile\":{") == true, "\(start ?? "")")
    }

    @Test func aDaemonThatAnswersIsDecoded() async throws {
        let peer = try ControlPeer.start(mode: "daemon")
        defer { peer.stop() }
        let info = try await ControlClient(socketPath: peer.socketPath).daemonInfo()
        #expect(info.version == "1.2.3" && info.pid == 77 && info.socket == peer.socketPath)
    }

    /// The daemon answers with Content-Length or chunks; either arrives in pieces of any
    /// size, and an answer cut short or not HTTP at all is one clear error.
    @Test func chunkedAnswersInPiecesAreDecodedAndBrokenOnesAreClearErrors() async throws {
        let chunked = try ControlPeer.start(mode: "chunked")
        defer { chunked.stop() }
        let info = try await ControlClient(socketPath: chunked.socketPath).daemonInfo()
        #expect(info.version == "1.2.3" && info.pid == 77 && info.socket == chunked.socketPath)

        for (mode, expected) in [("truncated", "in the middle of its answer"), ("not-http", "HTTP/1.x status line")] {
            let peer = try ControlPeer.start(mode: mode)
            defer { peer.stop() }
            do {
                _ = try await ControlClient(socketPath: peer.socketPath).daemonInfo()
                Issue.record("\(mode): no error")
            } catch {
                #expect("\(error)".contains(expected), "\(mode): \(error)")
            }
        }
    }

    @Test func noDaemonIsTheClearMessage() async throws {
        let peer = try ControlPeer.start(mode: "echo")
        defer { peer.stop() }
        // A socket file nobody listens on (a daemon that died), and no socket file at all.
        for socket in [peer.deadSocketPath, peer.directory + "/missing.sock"] {
            do {
                _ = try await ControlClient(socketPath: socket).list(all: false)
                Issue.record("a call to \(socket) succeeded")
            } catch {
                guard case .daemonNotRunning(let path) = error else {
                    Issue.record("\(socket): \(error)")
                    continue
                }
                #expect(path == socket)
                #expect(
                    error.description
                        == "agentrond is not running (nothing listens on \(socket)); `agentron up` starts it, or run `agentrond`"
                )
            }
        }
    }

    @Test func anAPIErrorBodyIsItsMessage() async throws {
        let peer = try ControlPeer.start(mode: "conflict")
        defer { peer.stop() }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).inspect("llama")
            Issue.record("a 409 was taken for a success")
        } catch {
            #expect(error.description == "server \"llama\" is already ready with a different spec")
            guard case .api(let apiError) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(apiError.code == .conflict)
        }
    }

    /// A newer daemon's code this client does not know: still its message, as a generic error.
    @Test func anUnknownErrorCodeKeepsItsMessage() async throws {
        let peer = try ControlPeer.start(mode: "teapot")
        defer { peer.stop() }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).list(all: true)
            Issue.record("a 418 was taken for a success")
        } catch {
            guard case .api(let apiError) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(apiError.code == .unknown("teapot"))
            #expect(error.description == "short and stout")
        }
    }

    @Test func aNonJSONErrorIsABadResponseWithTheStatus() async throws {
        let peer = try ControlPeer.start(mode: "html")
        defer { peer.stop() }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).daemonInfo()
            Issue.record("a 502 was taken for a success")
        } catch {
            guard case .badResponse = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.description == "daemon answered status 502: <html>bad gateway</html>")
        }
    }

    @Test func aSuccessThatIsNotJSONIsABadResponse() async throws {
        let peer = try ControlPeer.start(mode: "garbage")
        defer { peer.stop() }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).daemonInfo()
            Issue.record("garbage was decoded")
        } catch {
            guard case .badResponse = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.description.hasPrefix("unexpected reply to GET /v1/daemon: "), "\(error)")
        }
    }

    @Test func aDaemonThatDoesNotAnswerIsReportedAsHung() async throws {
        let peer = try ControlPeer.start(mode: "hang")
        defer { peer.stop() }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).daemonInfo(timeout: .milliseconds(500))
            Issue.record("a silent daemon answered")
        } catch {
            guard case .daemonNotAnswering(let socket, _) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(socket == peer.socketPath)
            #expect(error.description.contains("accepted the connection but did not answer"), "\(error)")
        }
    }

    /// Nothing is sent through a socket directory another user could have prepared.
    @Test func anUnsafeSocketDirectoryIsRefusedBeforeConnecting() async throws {
        let peer = try ControlPeer.start(mode: "daemon")
        defer { peer.stop() }
        chmod(peer.directory, 0o777)
        defer { chmod(peer.directory, 0o700) }
        do {
            _ = try await ControlClient(socketPath: peer.socketPath).daemonInfo()
            Issue.record("a world-writable socket directory was trusted")
        } catch {
            guard case .unsafeRuntimeDirectory = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.description.contains(peer.directory), "\(error)")
        }
    }
}

/// A control-API stand-in: Python's http.server on a Unix socket in a private directory,
/// answering every request the way `mode` says. Stopped by pid in each test's `defer`; it
/// also exits when its stdin closes, so a crashed test run leaves nothing behind.
struct ControlPeer {
    let process: Process
    let directory: String
    var socketPath: String { directory + "/agentron.sock" }
    var deadSocketPath: String { directory + "/dead.sock" }

    static func start(mode: String) throws -> ControlPeer {
        // Unix socket paths are limited to 107 bytes: stay out of a long $TMPDIR.
        var template = Array("/tmp/agentron-client-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw PeerError("mkdtemp failed: errno \(errno)") }
        let directory = String(cString: created)
        let script = directory + "/peer.py"
        try peerScript.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, mode, directory + "/agentron.sock", directory + "/dead.sock"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardInput = Pipe()  // held open by us; EOF means we are gone
        try process.run()
        let peer = ControlPeer(process: process, directory: directory)
        let line = stdout.fileHandleForReading.availableData
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            peer.stop()
            throw PeerError("the control peer did not start: \(String(decoding: line, as: UTF8.self))")
        }
        return peer
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private let peerScript = #"""
    import http.server, json, os, socket, socketserver, sys, threading, time

    mode, path, dead = sys.argv[1], sys.argv[2], sys.argv[3]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, code, message):
            self.reply(status, json.dumps({"error": {"code": code, "message": message}}).encode())

        def handle_any(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode() if length else ""
            if mode == "echo":
                line = "%s %s" % (self.command, self.path)
                if body:
                    line += " %s %s" % (self.headers.get("Content-Type", ""), body[:12])
                self.error(404, "not_found", line)
            elif mode == "daemon":
                self.reply(200, json.dumps({"version": "1.2.3", "pid": 77, "socket": path,
                                            "stateDirectory": "/tmp", "startedAt": 1.5}).encode())
            elif mode == "conflict":
                self.error(409, "conflict", 'server "llama" is already ready with a different spec')
            elif mode == "teapot":
                self.error(418, "teapot", "short and stout")
            elif mode == "html":
                self.reply(502, b"<html>bad gateway</html>", "text/html")
            elif mode == "garbage":
                self.reply(200, b"this is not json", "text/plain")
            elif mode == "hang":
                time.sleep(300)
            elif mode == "chunked":
                # The daemon's info in odd-sized chunks, with an extension and a trailer,
                # written in pieces that split lines and the CRLFs between them.
                data = json.dumps({"version": "1.2.3", "pid": 77, "socket": path,
                                   "stateDirectory": "/tmp", "startedAt": 1.5}).encode()
                wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                for start in range(0, len(data), 7):
                    piece = data[start:start + 7]
                    wire += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
                wire += b"0\r\nX-Trailer: yes\r\n\r\n"
                for start in range(0, len(wire), 5):
                    self.wfile.write(wire[start:start + 5])
                    self.wfile.flush()
                    time.sleep(0.001)
                self.close_connection = True
            elif mode == "truncated":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"version\"")
                self.wfile.flush()
                self.close_connection = True
            elif mode == "not-http":
                self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
                self.close_connection = True

        do_GET = do_POST = do_DELETE = handle_any

    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    def exit_when_parent_goes():
        sys.stdin.read()
        os._exit(0)

    server = UnixServer(path, Handler)
    os.chmod(path, 0o600)
    gone = socket.socket(socket.AF_UNIX)
    gone.bind(dead)  # the file stays; nobody listens on it
    gone.close()
    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    print("ready", flush=True)
    server.serve_forever()
    """#
