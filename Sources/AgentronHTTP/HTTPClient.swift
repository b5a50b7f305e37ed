import Synchronization

/// The one HTTP client all of agentron's outgoing HTTP goes through: the CLI's control API
/// calls over a Unix socket, the daemon's health probes, and streamed bodies (log follows,
/// pull progress, the Docker Engine API).
///
/// Requests never block a Swift concurrency thread and never take a thread each: they are
/// libcurl easy handles driven by one multi handle on one dedicated event thread (see
/// HTTPClient+EventLoop.swift), and each call suspends on a continuation that thread resumes.
public final class HTTPClient: Sendable {
    public static let shared = HTTPClient()

    /// Transfers of this client not yet freed; tests check it returns to zero. (Clients
    /// differ only in this counter: all share the one event thread.)
    let liveTransfers = Atomic<Int>(0)

    init() {}

    /// Sends the request and collects the whole response. Any HTTP status is returned, not
    /// thrown; throws `HTTPClientError` when no response came, or `CancellationError` when
    /// the task was cancelled (the transfer is aborted).
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await perform(Transfer(request, client: self, bodyStream: nil))
    }

    /// Sends the request and returns as soon as the response head (status + headers) has
    /// arrived; the body follows as chunks in `body`. Errors before the head are thrown here,
    /// later ones end the body stream. Cancelling the task that iterates the body, or
    /// releasing the stream, aborts the transfer.
    public func stream(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        let (body, bodyContinuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let transfer = try Transfer(request, client: self, bodyStream: bodyContinuation)
        // Weak: the event loop owns the transfer while it runs; once it is done there is
        // nothing to abort.
        bodyContinuation.onTermination = { [weak transfer] termination in
            if case .cancelled = termination { transfer?.cancel() }
        }
        let head = try await perform(transfer)
        return HTTPStreamingResponse(status: head.status, headers: head.headers, body: body)
    }

    /// Hands the transfer to the event thread and waits for its response (or, when
    /// streaming, its head).
    private func perform(_ transfer: Transfer) async throws -> HTTPResponse {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.continuation = continuation
                CurlEventLoop.shared.submit(transfer)
            }
        } onCancel: {
            transfer.cancel()
        }
    }
}
