/// One outgoing HTTP request. Over TCP the URL says where to connect; with
/// `unixSocketPath` curl connects to that socket and the URL's host only fills the Host
/// header (`http://localhost/v1/servers`).
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var unixSocketPath: String?
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// The whole exchange, body included; nil waits forever (log follows, pulls).
    public var timeout: Duration?
    /// Just the connect; nil keeps curl's default (300 s).
    public var connectTimeout: Duration?
    /// Unix sockets only: the uids the listening process may run as. Checked with
    /// SO_PEERCRED once connected and before a byte of the request is sent; anyone else
    /// fails the request with `HTTPClientError.untrustedPeer`. nil checks nothing (TCP, the
    /// Docker socket). A checked request always gets a connection of its own, so a pooled
    /// connection never skips the check.
    public var allowedPeerUIDs: [UInt32]?

    public init(
        method: String = "GET",
        url: String,
        unixSocketPath: String? = nil,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil,
        allowedPeerUIDs: [UInt32]? = nil
    ) {
        self.method = method
        self.url = url
        self.unixSocketPath = unixSocketPath
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.allowedPeerUIDs = allowedPeerUIDs
    }

    var target: HTTPTarget {
        HTTPTarget(method: method, url: url, unixSocketPath: unixSocketPath)
    }
}

/// A complete response. Any status is a response, not an error: 404 and 500 come back here.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text; invalid sequences become U+FFFD rather than failing.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first header with this name, compared case-insensitively (RFC 9110 §5.1).
    public func header(_ name: String) -> String? {
        headers.firstValue(named: name)
    }
}

/// A response whose head has arrived and whose body is still coming. Iterate `body` for
/// chunks as they arrive. The transfer is aborted when the consuming task is cancelled or
/// when the stream is released (stop iterating and let the response go out of scope).
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: AsyncThrowingStream<[UInt8], any Error>

    public init(
        status: Int,
        headers: [(name: String, value: String)] = [],
        body: AsyncThrowingStream<[UInt8], any Error>
    ) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.firstValue(named: name)
    }
}

extension [(name: String, value: String)] {
    func firstValue(named name: String) -> String? {
        let wanted = name.lowercased()
        return first { $0.name.lowercased() == wanted }?.value
    }
}
