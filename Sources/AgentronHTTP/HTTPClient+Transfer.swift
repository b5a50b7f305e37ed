import CCurl
import CCurlShims
import CProcessShims
import Synchronization

/// One request: its curl easy handle, the buffers curl writes into, and the continuation
/// waiting for the result.
///
/// Thread ownership: built on the caller's task, then handed to the event thread through
/// the event loop's locked inbox (which orders the caller's writes before the thread's
/// reads). From then on only the event thread touches it, except `isCancelled`, which any
/// thread may set.
final class Transfer: @unchecked Sendable {
    /// Counts this transfer among the client's live ones (tests prove none leak).
    private let client: HTTPClient
    let target: HTTPTarget
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// curl writes its detailed error text here (CURLOPT_ERRORBUFFER).
    private let errorBuffer: UnsafeMutablePointer<CChar>

    /// Set by whoever cancels. The event thread checks it when the transfer arrives, so a
    /// cancel that races ahead of the submit still wins.
    let isCancelled = Atomic<Bool>(false)

    /// Resumed once: with the whole response, or with just the head when streaming.
    var continuation: CheckedContinuation<HTTPResponse, any Error>?
    /// Non-nil when streaming: body chunks go here instead of into `body`.
    private let bodyStream: AsyncThrowingStream<[UInt8], any Error>.Continuation?

    private var status = 0
    private var headers: [(name: String, value: String)] = []
    private var headComplete = false
    private var body: [UInt8] = []
    var startedAt = ContinuousClock.now

    /// Peer check (HTTPRequest.allowedPeerUIDs): the uids allowed, the socket curl made for
    /// this transfer (recorded before it connects), and what the check found when it refused.
    private let allowedPeerUIDs: [UInt32]?
    private var connectedSocket: Int32 = -1
    private var refusedPeer: RefusedPeer?
    /// The listener's uid, nil when SO_PEERCRED could not be read.
    private struct RefusedPeer { var uid: UInt32? }

    init(
        _ request: HTTPRequest, client: HTTPClient,
        bodyStream: AsyncThrowingStream<[UInt8], any Error>.Continuation?
    ) throws {
        self.client = client
        target = request.target
        self.bodyStream = bodyStream
        allowedPeerUIDs = request.allowedPeerUIDs
        try CurlEventLoop.loadCurl(for: request.target)
        guard let easy = agentron_curl_easy_init() else {
            throw HTTPClientError.transport(
                request.target, code: Int(CURLE_FAILED_INIT.rawValue), message: "curl_easy_init failed")
        }
        self.easy = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        client.liveTransfers.add(1, ordering: .relaxed)
        // From here a throw runs deinit, which frees the handle.
        try configure(easy, for: request)
    }

    deinit {
        releaseHandle()
        errorBuffer.deallocate()
        client.liveTransfers.subtract(1, ordering: .relaxed)
    }

    /// Aborts the transfer from any thread; the event thread removes it and throws
    /// CancellationError to the waiter (or ends the body stream with it).
    func cancel() {
        isCancelled.store(true, ordering: .releasing)
        CurlEventLoop.shared.cancel(self)
    }

    // MARK: - Setup

    private func configure(_ easy: UnsafeMutableRawPointer, for request: HTTPRequest) throws {
        try set(CURLOPT_URL, request.url)
        if let socketPath = request.unixSocketPath {
            try set(CURLOPT_UNIX_SOCKET_PATH, socketPath)
        }
        // curl runs on its own thread in a multi-threaded process: its SIGALRM-based
        // resolver timeouts would land on any thread and are not thread-safe.
        try set(CURLOPT_NOSIGNAL, 1)
        // Never a proxy: an http_proxy in the environment must not hijack loopback probes
        // or the control API.
        try set(CURLOPT_PROXY, "")
        try set(CURLOPT_NOPROXY, "*")
        try set(CURLOPT_PROTOCOLS_STR, "http,https")
        try set(CURLOPT_TCP_NODELAY, 1)
        // A redirect from a health endpoint or the daemon is an answer to report, not follow.
        try set(CURLOPT_FOLLOWLOCATION, 0)
        if let timeout = request.timeout {
            try set(CURLOPT_TIMEOUT_MS, Self.curlMilliseconds(timeout))
        }
        if let connectTimeout = request.connectTimeout {
            try set(CURLOPT_CONNECTTIMEOUT_MS, Self.curlMilliseconds(connectTimeout))
        }
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_ERRORBUFFER), errorBuffer))

        // Callbacks get this object back unretained: the event loop holds it while curl runs.
        let context = Unmanaged.passUnretained(self).toOpaque()
        try check(agentron_curl_setopt_header_callback(easy, headerCallback))
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_HEADERDATA), context))
        try check(agentron_curl_setopt_write_callback(easy, writeCallback))
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_WRITEDATA), context))

        if request.allowedPeerUIDs != nil {
            try configurePeerCheck(context)
        }
        try configureMethodAndBody(request)
        try configureHeaders(request.headers)
    }

    /// SO_PEERCRED before sending. curl 7.88 cannot report the socket inside the pre-request
    /// callback (CURLINFO_ACTIVESOCKET is still -1 there), so the socket callback records it
    /// as curl creates it; a fresh, never-reused connection makes sure that recorded socket
    /// is the one the request goes out on.
    private func configurePeerCheck(_ context: UnsafeMutableRawPointer) throws {
        try check(agentron_curl_setopt_sockopt_callback(easy, socketCallback))
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_SOCKOPTDATA), context))
        try check(agentron_curl_setopt_prereq_callback(easy, prerequestCallback))
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_PREREQDATA), context))
        try set(CURLOPT_FRESH_CONNECT, 1)
        try set(CURLOPT_FORBID_REUSE, 1)
    }

    private func configureMethodAndBody(_ request: HTTPRequest) throws {
        let method = request.method.uppercased()
        // POST, PUT and PATCH without a body still send Content-Length: 0; some servers
        // answer 411 otherwise.
        let body = request.body ?? (["POST", "PUT", "PATCH"].contains(method) ? [] : nil)
        if let body {
            try set(CURLOPT_POSTFIELDSIZE, body.count)
            // COPYPOSTFIELDS copies now, so the bytes need not outlive this call. An empty
            // array has no storage to point at; curl copies zero bytes from "" instead.
            try body.withUnsafeBytes { bytes in
                try "".withCString { empty in
                    let pointer = bytes.baseAddress ?? UnsafeRawPointer(empty)
                    try check(
                        agentron_curl_setopt_ptr(
                            easy, option(CURLOPT_COPYPOSTFIELDS), UnsafeMutableRawPointer(mutating: pointer)))
                }
            }
        }
        switch (method, body) {
        case ("GET", nil): break
        case ("HEAD", _): try set(CURLOPT_NOBODY, 1)
        case ("POST", .some): break
        default: try set(CURLOPT_CUSTOMREQUEST, method)
        }
    }

    private func configureHeaders(_ headers: [(name: String, value: String)]) throws {
        var lines = headers.map { header in
            // "Name;" is curl's way to send a header with an empty value.
            header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
        }
        // curl sends "Expect: 100-continue" for larger bodies and then waits up to a second
        // for a 100 that simple servers never send; an empty "Expect:" turns that off.
        if !headers.contains(where: { $0.name.lowercased() == "expect" }) {
            lines.append("Expect:")
        }
        for line in lines {
            guard let appended = agentron_curl_slist_append(headerList, line) else {
                throw HTTPClientError.transport(
                    target, code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_slist_append failed")
            }
            headerList = appended.assumingMemoryBound(to: curl_slist.self)
        }
        try check(agentron_curl_setopt_ptr(easy, option(CURLOPT_HTTPHEADER), headerList))
    }

    private func set(_ curlOption: CURLoption, _ value: Int) throws {
        try check(agentron_curl_setopt_long(easy, option(curlOption), value))
    }

    private func set(_ curlOption: CURLoption, _ value: String) throws {
        try check(agentron_curl_setopt_str(easy, option(curlOption), value))
    }

    private func check(_ code: Int32) throws {
        guard code != 0 else { return }
        throw HTTPClientError.transport(
            target, code: Int(code),
            message: "setting up the request: " + String(cString: agentron_curl_easy_strerror(code))
        )
    }

    private func option(_ curlOption: CURLoption) -> Int32 { Int32(curlOption.rawValue) }

    /// curl reads 0 as "no timeout", so a zero or negative timeout becomes the smallest real one.
    private static func curlMilliseconds(_ duration: Duration) -> Int {
        max(1, duration.wholeMilliseconds)
    }

    // MARK: - On the event thread

    fileprivate func recordSocket(_ fd: Int32) {
        connectedSocket = fd
    }

    /// Whether the listener on the connected socket may receive this request.
    fileprivate func peerIsAllowed() -> Bool {
        guard let allowedPeerUIDs else { return true }
        var credentials = agentron_peer_credentials()
        guard connectedSocket >= 0, agentron_socket_peer_credentials(connectedSocket, &credentials) == 0 else {
            refusedPeer = RefusedPeer(uid: nil)
            return false
        }
        guard allowedPeerUIDs.contains(credentials.uid) else {
            refusedPeer = RefusedPeer(uid: credentials.uid)
            return false
        }
        return true
    }

    /// One header line from curl, CRLF included. A status line starts a new head (after a
    /// 1xx interim response, the real one follows); the blank line after a final status
    /// ends the head. Lines after that are trailers, which nobody here needs.
    fileprivate func receiveHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
        if line.hasPrefix("HTTP/") {
            let fields = line.split(separator: " ", maxSplits: 2)
            status = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            headers = []
            headComplete = false
        } else if line.isEmpty {
            if !(100..<200).contains(status) {
                headComplete = true
                deliverHead()
            }
        } else if !headComplete, let colon = line.firstIndex(of: ":") {
            headers.append(
                (
                    name: String(line[..<colon]).trimmingWhitespace(),
                    value: String(line[line.index(after: colon)...]).trimmingWhitespace()
                ))
        }
    }

    /// Body bytes: buffered, or yielded to the stream. Returns false when nobody listens
    /// any more, which makes curl abort the transfer.
    fileprivate func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let bodyStream else {
            body.append(contentsOf: bytes)
            return true
        }
        deliverHead()
        if case .terminated = bodyStream.yield(Array(bytes)) { return false }
        return true
    }

    /// Streaming only: the caller gets status and headers now, the body as it comes.
    private func deliverHead() {
        guard bodyStream != nil, let continuation else { return }
        self.continuation = nil
        continuation.resume(returning: HTTPResponse(status: status, headers: headers))
    }

    /// The transfer left the multi handle: frees the handle, then tells the waiter.
    func finish(_ result: CURLcode) {
        if result == CURLE_ABORTED_BY_CALLBACK, let refusedPeer {
            finish(throwing: HTTPClientError.untrustedPeer(target, uid: refusedPeer.uid))
            return
        }
        guard result == CURLE_OK else {
            let message = String(cString: errorBuffer).trimmingWhitespace()
            finish(
                throwing: HTTPClientError(
                    curlCode: result, message: message, target: target, elapsed: .now - startedAt))
            return
        }
        var code = 0
        if let easy, agentron_curl_getinfo_long(easy, Int32(CURLINFO_RESPONSE_CODE.rawValue), &code) == 0,
            code != 0
        {
            status = code
        }
        releaseHandle()
        let response = HTTPResponse(status: status, headers: headers, body: body)
        body = []
        continuation?.resume(returning: response)
        continuation = nil
        bodyStream?.finish()
    }

    func finish(throwing error: any Error) {
        releaseHandle()
        continuation?.resume(throwing: error)
        continuation = nil
        bodyStream?.finish(throwing: error)
    }

    /// Idempotent; the event loop must have removed the handle from the multi handle first.
    private func releaseHandle() {
        if let easy {
            agentron_curl_easy_cleanup(easy)
            self.easy = nil
        }
        if let headerList {
            agentron_curl_slist_free_all(headerList)
            self.headerList = nil
        }
    }
}

// C callbacks: no captures, so they convert to C function pointers. Returning anything but
// the byte count makes curl abort the transfer with CURLE_WRITE_ERROR.

private let headerCallback: agentron_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

private let writeCallback: agentron_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let accepted = transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
    return accepted ? size * count : 0
}

private let socketCallback: agentron_curl_sockopt_callback = { context, fd, _ in
    guard let context else { return 0 }
    Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().recordSocket(fd)
    return 0  // CURL_SOCKOPT_OK
}

private let prerequestCallback: agentron_curl_prereq_callback = { context, _, _, _, _ in
    // No context means no transfer to check for: refuse rather than send unchecked.
    guard let context else { return 1 }  // CURL_PREREQFUNC_ABORT
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.peerIsAllowed() ? 0 : 1  // CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT
}

extension StringProtocol {
    /// Without Foundation: strips spaces, tabs, CR and LF at both ends.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(self[first...last])
    }
}
