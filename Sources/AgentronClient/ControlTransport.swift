import CProcessShims
import Glibc
import Synchronization

/// HTTP/1.1 to the daemon over its Unix socket: one connection per call, on a thread of its
/// own, with plain blocking system calls.
///
/// Why not a library: the CLI's common commands are one small request to our own daemon,
/// and what a library costs at start-up is most of the command. libcurl brought thirty
/// shared objects; SwiftNIO an event-loop thread, a channel pipeline and hundreds of
/// generic types to instantiate (measured: `ps` 15 ms with either, docs/PERFORMANCE.md).
/// The daemon's side is SwiftNIO and answers every request with `Content-Length` or
/// chunked; this reads exactly that, and anything else is a clear error.
///
/// Nothing is sent before the listener's credentials (SO_PEERCRED) name a trusted uid.
enum ControlTransport {
    struct Response {
        var status: Int
        var body: [UInt8]
    }

    enum Failure: Error {
        /// connect(2) failed: nothing listens, no socket, or not allowed (the caller asks
        /// the kernel which).
        case cannotConnect(String)
        /// Connected, but no whole answer within the deadline.
        case timedOut(after: Duration)
        /// The listener runs as a uid not in the trusted list (nil: could not tell).
        case untrustedPeer(uid: UInt32?)
        /// The connection failed or closed before the answer was complete.
        case broken(String)
    }

    /// One request, its whole answer, within `timeout` of the connection.
    static func execute(
        method: String, target: String, body: [UInt8]?, socketPath: String, trusted: [UInt32],
        connectTimeout: Duration, timeout: Duration
    ) async throws(Failure) -> Response {
        let request = encode(method: method, target: target, body: body)
        let result = await BlockingThread.run { () -> Result<Response, Failure> in
            do throws(Failure) {
                let connection = try UnixConnection(socketPath, trusted: trusted, connectTimeout: connectTimeout)
                defer { connection.close() }
                let reader = ResponseReader(connection, deadline: .now + timeout, timeout: timeout)
                try connection.write(request, reader.deadline, timeout)
                let status = try reader.readHead()
                var body: [UInt8] = []
                while let chunk = try reader.readChunk() { body += chunk }
                return .success(Response(status: status, body: body))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// One request whose answer's body arrives over time (`logs --follow`): the status once
    /// the head is in, then the body's chunks as the daemon writes them, until the daemon
    /// ends it or the consumer stops iterating (which shuts the connection down).
    static func stream(
        method: String, target: String, socketPath: String, trusted: [UInt32], connectTimeout: Duration
    ) async throws(Failure) -> (status: Int, body: AsyncThrowingStream<[UInt8], any Error>) {
        let request = encode(method: method, target: target, body: nil)
        let connection = try await BlockingThread.run { () -> Result<UnixConnection, Failure> in
            do throws(Failure) {
                return .success(try UnixConnection(socketPath, trusted: trusted, connectTimeout: connectTimeout))
            } catch {
                return .failure(error)
            }
        }.get()
        let reader = ResponseReader(connection, deadline: nil, timeout: nil)
        let head = await BlockingThread.run { () -> Result<Int, Failure> in
            do throws(Failure) {
                try connection.write(request, nil, nil)
                return .success(try reader.readHead())
            } catch {
                return .failure(error)
            }
        }
        let status: Int
        do { status = try head.get() } catch {
            connection.close()
            throw error
        }
        let (body, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        continuation.onTermination = { _ in connection.shutdown() }
        BlockingThread.start {
            defer { connection.close() }
            do throws(Failure) {
                while let chunk = try reader.readChunk() { continuation.yield(chunk) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return (status, body)
    }

    /// The request's bytes: the daemon ignores Host, HTTP/1.1 requires one. The client
    /// closes the connection once it has read the whole answer (one call, one connection);
    /// it does not ask the daemon to: earlier daemons cut a long answer short when they
    /// closed the connection after it.
    static func encode(method: String, target: String, body: [UInt8]?) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        return Array((head + "\r\n").utf8) + (body ?? [])
    }
}

/// A connected Unix stream socket whose listener has been checked. `shutdown` may come from
/// any thread (it wakes a blocked read); after `close` neither touches the descriptor, which
/// the process may already have given to something else.
final class UnixConnection: Sendable {
    let fd: Int32
    private let closed = Mutex(false)

    init(_ path: String, trusted: [UInt32], connectTimeout: Duration) throws(ControlTransport.Failure) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .cannotConnect(String(cString: strerror(errno))) }
        // A blocking connect to a Unix socket waits only when the listener's backlog is full;
        // SO_SNDTIMEO bounds that wait (it is how the kernel times Unix connects).
        var limit = timeval(tv_sec: Int(connectTimeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let error = UnixConnection.connect(fd, path)
        if error == EAGAIN || error == ETIMEDOUT {
            Glibc.close(fd)
            throw .timedOut(after: connectTimeout)
        }
        guard error == 0 else {
            Glibc.close(fd)
            throw .cannotConnect(String(cString: strerror(error)))
        }
        var credentials = agentron_peer_credentials()
        guard agentron_socket_peer_credentials(fd, &credentials) == 0 else {
            Glibc.close(fd)
            throw .untrustedPeer(uid: nil)
        }
        guard trusted.contains(credentials.uid) else {
            Glibc.close(fd)
            throw .untrustedPeer(uid: credentials.uid)
        }
    }

    /// 0, or connect(2)'s errno (ENAMETOOLONG for a path that does not fit sun_path).
    static func connect(_ fd: Int32, _ path: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return ENAMETOOLONG }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0 ? 0 : errno
    }

    /// Waits until `fd` is readable (or writable) or the deadline passes.
    func wait(for events: Int16, _ deadline: ContinuousClock.Instant?, _ timeout: Duration?)
        throws(ControlTransport.Failure)
    {
        while true {
            var milliseconds: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero else { throw .timedOut(after: timeout ?? .zero) }
                let (seconds, attoseconds) = left.components
                milliseconds = Int32(clamping: min(seconds, 1_000_000) * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .broken("poll: " + String(cString: strerror(errno))) }
        }
    }

    func write(_ bytes: [UInt8], _ deadline: ContinuousClock.Instant?, _ timeout: Duration?)
        throws(ControlTransport.Failure)
    {
        var offset = 0
        while offset < bytes.count {
            try wait(for: Int16(POLLOUT), deadline, timeout)
            let written = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .broken("sending the request: " + String(cString: strerror(errno)))
            }
            offset += written
        }
    }

    /// Up to `capacity` bytes; empty at the end of the stream.
    func read(capacity: Int, _ deadline: ContinuousClock.Instant?, _ timeout: Duration?)
        throws(ControlTransport.Failure) -> [UInt8]
    {
        while true {
            try wait(for: Int16(POLLIN), deadline, timeout)
            var buffer = [UInt8](repeating: 0, count: capacity)
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, capacity) }
            if count >= 0 { return Array(buffer.prefix(count)) }
            if errno == EINTR || errno == EAGAIN { continue }
            throw .broken("reading the answer: " + String(cString: strerror(errno)))
        }
    }

    func shutdown() {
        closed.withLock { closed in
            if !closed { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func close() {
        closed.withLock { closed in
            if !closed { Glibc.close(fd) }
            closed = true
        }
    }
}

/// Runs blocking work on a thread of its own, so a long call (`up` waiting for a model,
/// `logs -f`) never holds one of Swift's few cooperative threads.
enum BlockingThread {
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            start { continuation.resume(returning: work()) }
        }
    }

    static func start(_ work: @escaping @Sendable () -> Void) {
        final class Box {
            let work: @Sendable () -> Void
            init(_ work: @escaping @Sendable () -> Void) { self.work = work }
        }
        let context = Unmanaged.passRetained(Box(work)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                Unmanaged<Box>.fromOpaque(context).takeRetainedValue().work()
                return nil
            }, context)
        if result == 0 {
            pthread_detach(thread)
        } else {
            // No thread to be had: do it here rather than not at all.
            Unmanaged<Box>.fromOpaque(context).takeRetainedValue().work()
        }
    }
}

/// Reads one HTTP/1.1 answer from a connection: the head, then the body piece by piece as
/// it arrives, framed by `Content-Length`, by chunks, or by the end of the connection.
/// Used by one thread at a time.
final class ResponseReader: @unchecked Sendable {
    private enum Framing {
        case length(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    /// A head or a chunk-size line longer than this is not our daemon's.
    static let lineLimit = 64 * 1024
    static let readSize = 64 * 1024

    let connection: UnixConnection
    let deadline: ContinuousClock.Instant?
    let timeout: Duration?
    private var buffer: [UInt8] = []
    private var position = 0
    private var framing = Framing.untilClose

    init(_ connection: UnixConnection, deadline: ContinuousClock.Instant?, timeout: Duration?) {
        self.connection = connection
        self.deadline = deadline
        self.timeout = timeout
    }

    /// The status; the headers decide how the body is framed.
    func readHead() throws(ControlTransport.Failure) -> Int {
        let statusLine = try readLine()
        let words = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2)
        guard words.count >= 2, words[0].starts(with: Array("HTTP/1.".utf8)),
            let status = Int(String(decoding: words[1], as: UTF8.self)), (100...599).contains(status)
        else {
            throw .broken("the daemon's answer does not start with an HTTP/1.x status line")
        }
        var length: Int?
        var chunked = false
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces
            if name == "transfer-encoding" {
                chunked = value.lowercased().contains("chunked")
            } else if name == "content-length" {
                guard let parsed = Int(value), parsed >= 0 else {
                    throw .broken("the daemon's answer has a bad Content-Length: \(value)")
                }
                length = parsed
            }
        }
        if status == 204 || status == 304 {
            framing = .done
        } else if chunked {
            framing = .chunkSize
        } else if let length {
            framing = .length(length)
        }
        return status
    }

    /// The next piece of the body as it arrives; nil at its end.
    func readChunk() throws(ControlTransport.Failure) -> [UInt8]? {
        while true {
            switch framing {
            case .done:
                return nil
            case .untilClose:
                if position == buffer.count, try !fill() {
                    framing = .done
                    return nil
                }
                return take(buffer.count - position)
            case .length(0):
                framing = .done
            case .chunkData(0):
                framing = .chunkDataEnd
            case .length(let left), .chunkData(let left):
                if position == buffer.count, try !fill() {
                    throw .broken("the daemon closed the connection in the middle of its answer")
                }
                let piece = take(min(left, buffer.count - position))
                if case .length = framing {
                    framing = .length(left - piece.count)
                } else {
                    framing = .chunkData(left - piece.count)
                }
                return piece
            case .chunkSize:
                let line = try readLine()
                let digits = line.prefix { $0 != UInt8(ascii: ";") }
                guard let size = Int(String(decoding: digits, as: UTF8.self).trimmingSpaces, radix: 16), size >= 0
                else {
                    throw .broken("the daemon's answer has a bad chunk size")
                }
                framing = size == 0 ? .trailers : .chunkData(size)
            case .chunkDataEnd:
                guard try readLine().isEmpty else { throw .broken("the daemon's answer has a chunk without its end") }
                framing = .chunkSize
            case .trailers:
                if try readLine().isEmpty { framing = .done }
            }
        }
    }

    /// One line without its CRLF.
    private func readLine() throws(ControlTransport.Failure) -> ArraySlice<UInt8> {
        var scanned = 0  // bytes after `position` known not to start a CRLF
        while true {
            var index = position + scanned
            while index + 1 < buffer.count {
                if buffer[index] == 13 && buffer[index + 1] == 10 {
                    let line = buffer[position..<index]
                    position = index + 2
                    return line
                }
                index += 1
            }
            scanned = max(0, buffer.count - 1 - position)
            guard buffer.count - position < Self.lineLimit else {
                throw .broken("the daemon's answer has a line over 64 KiB")
            }
            guard try fill() else { throw .broken("the daemon closed the connection before its answer was complete") }
        }
    }

    private func take(_ count: Int) -> [UInt8] {
        let piece = Array(buffer[position..<(position + count)])
        position += count
        return piece
    }

    /// Reads more; false at the end of the stream. Consumed bytes are dropped first.
    private func fill() throws(ControlTransport.Failure) -> Bool {
        if position > 0 {
            buffer.removeFirst(position)
            position = 0
        }
        let bytes = try connection.read(capacity: Self.readSize, deadline, timeout)
        guard !bytes.isEmpty else { return false }
        buffer += bytes
        return true
    }
}
