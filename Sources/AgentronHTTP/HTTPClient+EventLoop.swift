import CCurl
import CCurlShims
import Glibc
import Synchronization

/// The one thread that drives every transfer. A curl multi handle multiplexes all easy
/// handles over non-blocking sockets, so a hundred concurrent health probes cost one
/// thread and no Swift concurrency thread ever blocks in curl.
///
/// Callers put transfers (and cancellations) into a locked inbox and wake the thread with
/// curl_multi_wakeup; the thread adds them to the multi handle, runs curl, and resumes the
/// waiting continuations as transfers finish. Everything about the multi handle and the
/// `active` table happens on that thread only, as curl requires.
final class CurlEventLoop: @unchecked Sendable {
    /// Started on first use; lives for the process (there is nothing to shut down: the
    /// thread only sleeps in curl_multi_poll when idle).
    static let shared = CurlEventLoop()

    /// How long the thread sleeps with nothing to do. New work wakes it at once
    /// (curl_multi_wakeup) and curl shortens the wait to its own timers while transfers
    /// run, so this only bounds how often an idle daemon wakes up.
    private static let idlePollMilliseconds: Int32 = 60_000
    /// Idle keep-alive connections kept across transfers, in all.
    private static let idleConnections = 1024

    private struct Inbox {
        var added: [Transfer] = []
        var cancelled: [Transfer] = []
    }

    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    /// Transfers in the multi handle, by easy handle. Event thread only.
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    /// How many transfers are in the multi handle now; for tests and diagnostics.
    let inFlightCount = Atomic<Int>(0)

    private init() {
        guard let multi = agentron_curl_multi_init() else {
            // Only fails when out of memory (a Transfer, always made first, loaded curl);
            // there is no HTTP without it.
            fatalError("agentron: curl_multi_init failed")
        }
        self.multi = multi
        // One idle connection per engine stays open for its next probe (curl's default
        // cache holds four times the transfers in flight, a handful, so each probe of a
        // hundred servers paid a new TCP connection).
        _ = agentron_curl_multi_setopt_long(multi, Int32(CURLMOPT_MAXCONNECTS.rawValue), Self.idleConnections)
        startThread()
    }

    /// libcurl loaded and curl_global_init run (not thread-safe, and before any other curl
    /// call) exactly once, on first use; nil when both worked, otherwise why not.
    private static let curlUnavailable: String? = {
        guard agentron_curl_load() == 0 else { return String(cString: agentron_curl_load_error()) }
        let code = agentron_curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return code == 0 ? nil : "curl_global_init failed: " + String(cString: agentron_curl_easy_strerror(code))
    }()

    /// Called before a transfer's first curl call: the request fails with the reason when
    /// libcurl cannot be loaded (not installed), instead of the process failing to start.
    static func loadCurl(for target: HTTPTarget) throws {
        if let reason = curlUnavailable {
            throw HTTPClientError.transport(target, code: Int(CURLE_FAILED_INIT.rawValue), message: reason)
        }
    }

    // MARK: - Any thread

    func submit(_ transfer: Transfer) {
        inbox.withLock { $0.added.append(transfer) }
        agentron_curl_multi_wakeup(multi)
    }

    func cancel(_ transfer: Transfer) {
        inbox.withLock { $0.cancelled.append(transfer) }
        agentron_curl_multi_wakeup(multi)
    }

    // MARK: - Event thread

    private func startThread() {
        // pthread rather than Foundation's Thread: this module stays off Foundation.
        // The thread keeps the loop alive for the life of the process.
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                agentron_curl_name_thread("agentron-curl")
                Unmanaged<CurlEventLoop>.fromOpaque(context).takeUnretainedValue().run()
                return nil
            }, context)
        guard result == 0 else {
            fatalError("agentron: cannot start the HTTP event thread (pthread_create: \(result))")
        }
        pthread_detach(thread)
    }

    private func run() {
        while true {
            drainInbox()

            var running: Int32 = 0
            agentron_curl_multi_perform(multi, &running)
            collectFinished()

            agentron_curl_multi_poll(multi, Self.idlePollMilliseconds)
        }
    }

    /// A function of its own so the taken batch is released before the thread sleeps in
    /// curl_multi_poll: a finished transfer must not stay alive (and its waiter's memory
    /// with it) until the next wakeup.
    private func drainInbox() {
        let (added, cancelled) = inbox.withLock { inbox in
            let taken = (inbox.added, inbox.cancelled)
            inbox = Inbox()
            return taken
        }
        // Additions first: a cancel for a transfer in this same batch then finds it.
        for transfer in added { add(transfer) }
        for transfer in cancelled { abort(transfer) }
    }

    private func add(_ transfer: Transfer) {
        guard let easy = transfer.easy else { return }
        // A cancel that raced ahead of the submit already set the flag; never start it.
        if transfer.isCancelled.load(ordering: .acquiring) {
            transfer.finish(throwing: CancellationError())
            return
        }
        transfer.startedAt = .now
        let code = agentron_curl_multi_add_handle(multi, easy)
        guard code == CURLM_OK.rawValue else {
            let message = String(cString: agentron_curl_multi_strerror(code))
            transfer.finish(
                throwing: HTTPClientError.transport(transfer.target, code: Int(code), message: message))
            return
        }
        active[easy] = transfer
        inFlightCount.add(1, ordering: .relaxed)
    }

    /// A cancel for a transfer that already finished is a no-op: it simply is not active.
    private func abort(_ transfer: Transfer) {
        guard let easy = transfer.easy, active.removeValue(forKey: easy) != nil else { return }
        agentron_curl_multi_remove_handle(multi, easy)
        inFlightCount.subtract(1, ordering: .relaxed)
        transfer.finish(throwing: CancellationError())
    }

    private func collectFinished() {
        var queued: Int32 = 0
        while let raw = agentron_curl_multi_info_read(multi, &queued) {
            let message = raw.assumingMemoryBound(to: CURLMsg.self)
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            // Read the result before removing the handle: that invalidates the message.
            let result = message.pointee.data.result
            agentron_curl_multi_remove_handle(multi, easy)
            guard let transfer = active.removeValue(forKey: easy) else { continue }
            inFlightCount.subtract(1, ordering: .relaxed)
            transfer.finish(result)
        }
    }
}
