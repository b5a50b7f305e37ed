import Foundation
import Glibc
import Synchronization

/// A real HTTP server on 127.0.0.1 (an ephemeral port) for the probe tests: one thread in
/// this process accepts connections and answers each request from `routes`, one request per
/// connection. No process to stop; `stop()` closes the socket and waits for the thread,
/// and every test calls it in a `defer`.
final class StubServer: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        /// Header names lower-cased.
        var headers: [String: String]
    }

    struct Reply: Sendable {
        var status: Int
        var body: String
        var contentType = "application/json"
    }

    typealias Route = @Sendable (Request) -> Reply

    let port: Int
    private let listener: Int32
    private let routes: Mutex<[String: Route]>
    private let requests = Mutex<[Request]>([])
    private let finished = DispatchSemaphore(value: 0)

    init(_ routes: [String: Route] = [:]) throws {
        self.routes = Mutex(routes)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StubServerError("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw StubServerError("bind/listen: \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Answers `path` with `reply` from now on.
    func route(_ path: String, _ reply: Reply) {
        routes.withLock { $0[path] = { _ in reply } }
    }

    func route(_ path: String, _ handler: @escaping Route) {
        routes.withLock { $0[path] = handler }
    }

    /// The requests answered so far, in order.
    var received: [Request] { requests.withLock { $0 } }

    func stop() {
        // shutdown wakes the accept the thread blocks in; the thread then closes the socket.
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                break
            }
            answer(connection)
            close(connection)
        }
        close(listener)
        finished.signal()
    }

    private func answer(_ connection: Int32) {
        guard let request = readRequest(connection) else { return }
        requests.withLock { $0.append(request) }
        let route = routes.withLock { $0[request.path] }
        let reply = route?(request) ?? Reply(status: 404, body: "not found", contentType: "text/plain")
        let body = Array(reply.body.utf8)
        let head =
            "HTTP/1.1 \(reply.status) Stub\r\nContent-Type: \(reply.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if count <= 0 { return }
            sent += count
        }
    }

    /// The request line and headers; a body (Content-Length) is read and dropped.
    private func readRequest(_ connection: Int32) -> Request? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let end: Int
        while true {
            if let found = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                end = found.upperBound
                break
            }
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            data += chunk[0..<count]
        }
        let lines = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ")
        guard first.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var remaining = (headers["content-length"].flatMap { Int($0) } ?? 0) - (data.count - end)
        while remaining > 0 {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, min($0.count, remaining), 0) }
            if count <= 0 { break }
            remaining -= count
        }
        return Request(method: String(first[0]), path: String(first[1]), headers: headers)
    }

    /// A port nothing listens on: bound, then closed again.
    static func closedPort() throws -> Int {
        let server = try StubServer()
        let port = server.port
        server.stop()
        return port
    }
}

struct StubServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
