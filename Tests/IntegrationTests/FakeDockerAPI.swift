import Foundation
import Synchronization
import Testing

/// A few Docker Engine API answers on a Unix socket, recording every request, for the cases
/// a real dockerd cannot show here: a GPU host (a GPU device request fails the create on
/// this CPU-only dockerd). It answers what the shim asks before and at create, then refuses
/// the start, so no container and no process outlives a test. Each connection gets one
/// answer and is closed (`Connection: close`).
final class FakeDockerAPI: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var body: Data
    }

    let socketPath: String
    private let listener: Int32
    private let recorded = Mutex<[Request]>([])
    private let runtimes: [String]

    /// `runtimes`: what `/info` lists (`nvidia` makes the host a GPU host by Docker's word).
    init(socketPath: String, runtimes: [String] = ["runc"]) throws {
        self.socketPath = socketPath
        self.runtimes = runtimes
        unlink(socketPath)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("fake Docker: socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw HarnessError("fake Docker: socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw HarnessError("fake Docker: cannot listen on \(socketPath): \(errno)")
        }
        listener = fd
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    var requests: [Request] { recorded.withLock { $0 } }

    /// The JSON body of the first `POST /containers/create`.
    func createBody() throws -> [String: Any] {
        let create = try #require(requests.first { $0.method == "POST" && $0.path.hasPrefix("/containers/create") })
        return try #require(try JSONSerialization.jsonObject(with: create.body) as? [String: Any])
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(socketPath)
    }

    private func serve() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ fd: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Range<Data.Index>?
        var contentLength = 0
        var continued = false
        while true {
            if headerEnd == nil, let end = data.range(of: Data("\r\n\r\n".utf8)) {
                headerEnd = end
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    contentLength =
                        Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                // libcurl waits for this before a larger body.
                if head.contains("expect: 100-continue"), !continued {
                    continued = true
                    send(fd, "HTTP/1.1 100 Continue\r\n\r\n")
                }
            }
            if let end = headerEnd, data.count - end.upperBound >= contentLength { break }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return }
            data.append(contentsOf: buffer[0..<n])
        }
        guard let end = headerEnd else { return }
        let requestLine = String(decoding: data[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count >= 2 else { return }
        let method = String(parts[0])
        var path = String(parts[1])
        // Versioned paths (/v1.41/...) are the same calls.
        if path.hasPrefix("/v1."), let slash = path.dropFirst().firstIndex(of: "/") { path = String(path[slash...]) }
        let body = Data(data[end.upperBound..<(end.upperBound + contentLength)])
        recorded.withLock { $0.append(Request(method: method, path: path, body: body)) }

        let (status, json) = answer(method: method, path: path)
        let payload = Array(json.utf8)
        send(
            fd,
            "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
                + json)
    }

    private func answer(method: String, path: String) -> (Int, String) {
        switch (method, path) {
        case ("GET", let p) where p.hasPrefix("/version"):
            return (200, #"{"Version":"fake","ApiVersion":"1.41"}"#)
        case ("GET", let p) where p.hasPrefix("/info"):
            let list = runtimes.map { #""\#($0)":{"path":"\#($0)"}"# }.joined(separator: ",")
            return (200, #"{"Runtimes":{\#(list)}}"#)
        case ("GET", let p) where p.hasPrefix("/containers/json"):
            return (200, "[]")
        case ("GET", let p) where p.hasPrefix("/images/"):
            return (200, #"{"Id":"sha256:fake"}"#)
        case ("POST", let p) where p.hasPrefix("/containers/create"):
            return (201, #"{"Id":"fakecontainer0000","Warnings":[]}"#)
        case ("POST", let p) where p.hasSuffix("/start"):
            return (500, #"{"message":"fake Docker: this API only records the create"}"#)
        case ("DELETE", _):
            return (204, "")
        default:
            return (404, #"{"message":"fake Docker: no \#(method) \#(path)"}"#)
        }
    }

    private func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            guard n > 0 else { return }
            written += n
        }
    }
}
