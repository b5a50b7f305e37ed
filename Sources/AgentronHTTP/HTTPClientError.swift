import CCurl
import CCurlShims

/// What a request was aimed at, for error messages: method, URL, and the Unix socket when
/// there is one (the URL's host means nothing then).
public struct HTTPTarget: Sendable, Hashable, CustomStringConvertible {
    public var method: String
    public var url: String
    public var unixSocketPath: String?

    public init(method: String, url: String, unixSocketPath: String? = nil) {
        self.method = method
        self.url = url
        self.unixSocketPath = unixSocketPath
    }

    public var description: String {
        if let unixSocketPath {
            return "\(method) \(url) on unix socket \(unixSocketPath)"
        }
        return "\(method) \(url)"
    }
}

/// Why a request got no HTTP response. A response with any status is not an error.
public enum HTTPClientError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Nothing accepted the connection: a closed port, or a Unix socket that is missing or
    /// that nobody listens on (CURLE_COULDNT_CONNECT).
    case connectionRefused(HTTPTarget)
    /// The connect or the whole exchange ran past its timeout; `after` is the time spent.
    case timedOut(HTTPTarget, after: Duration)
    /// The server closed the connection without sending anything (CURLE_GOT_NOTHING).
    case emptyReply(HTTPTarget)
    /// Any other curl failure, with curl's code and its own error text.
    case transport(HTTPTarget, code: Int, message: String)
    /// The process listening on the Unix socket runs as a uid the request does not allow
    /// (`HTTPRequest.allowedPeerUIDs`); nil when its credentials could not be read. Nothing
    /// of the request was sent.
    case untrustedPeer(HTTPTarget, uid: UInt32?)

    public var target: HTTPTarget {
        switch self {
        case .connectionRefused(let target), .timedOut(let target, _), .emptyReply(let target),
            .transport(let target, _, _), .untrustedPeer(let target, _):
            return target
        }
    }

    public var description: String {
        switch self {
        case .connectionRefused(let target) where target.unixSocketPath != nil:
            return "\(target): connection refused (socket missing or nothing listening on it)"
        case .connectionRefused(let target):
            return "\(target): connection refused"
        case .timedOut(let target, let after):
            return "\(target): timed out after \(Self.format(after))"
        case .emptyReply(let target):
            return "\(target): the server closed the connection without replying"
        case .transport(let target, let code, let message):
            return "\(target): \(message) (curl error \(code))"
        case .untrustedPeer(let target, let uid?):
            return "\(target): the listener runs as uid \(uid), which this request does not trust; nothing was sent"
        case .untrustedPeer(let target, nil):
            return "\(target): cannot tell who listens on the socket (SO_PEERCRED failed); nothing was sent"
        }
    }

    /// Maps a failed transfer's CURLcode; `message` is curl's error buffer (may be empty).
    init(curlCode: CURLcode, message: String, target: HTTPTarget, elapsed: Duration) {
        switch curlCode {
        case CURLE_COULDNT_CONNECT:
            self = .connectionRefused(target)
        case CURLE_OPERATION_TIMEDOUT:
            self = .timedOut(target, after: elapsed)
        case CURLE_GOT_NOTHING:
            self = .emptyReply(target)
        default:
            let text =
                message.isEmpty ? String(cString: agentron_curl_easy_strerror(Int32(curlCode.rawValue))) : message
            self = .transport(target, code: Int(curlCode.rawValue), message: text)
        }
    }

    /// "850 ms", "2 s", "2.5 s": short enough for a one-line message.
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        if milliseconds < 1000 { return "\(milliseconds) ms" }
        let tenths = (milliseconds + 50) / 100
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }
}

extension Duration {
    /// Whole milliseconds, saturating instead of trapping for absurd spans (issue #10).
    public var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (ms, overflow) = Int(seconds).multipliedReportingOverflow(by: 1000)
        return overflow ? Int.max : ms.addingReportingOverflow(Int(attoseconds / 1_000_000_000_000_000)).partialValue
    }
}
