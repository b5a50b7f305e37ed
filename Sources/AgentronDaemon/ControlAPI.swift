import AgentronCore
import AgentronProcess
import FoundationEssentials
import Glibc

/// The wire adapter of the control API (docs/architecture.md): decode a request, call the registry,
/// encode the reply. It holds no state of its own; the transport is ControlServer.
struct ControlAPI: Sendable {
    let registry: ServerRegistry
    let daemonInfo: DaemonInfo

    struct Request: Sendable {
        var method: String
        var path: String
        var query: [String: String]
        var body: [UInt8]
    }

    enum Reply: Sendable {
        case json(status: Int, body: [UInt8])
        case text(status: Int, body: [UInt8])
        /// A body written as it is produced (`logs --follow`).
        case stream(contentType: String, body: AsyncStream<[UInt8]>)
    }

    /// The longest a single `wait` call holds the connection; the CLI calls again to keep
    /// waiting, rendering progress in between.
    static let maxWait: Duration = .seconds(30)
    /// How often `logs --follow` looks for new output.
    static let followInterval: Duration = .milliseconds(200)

    func handle(_ request: Request) async -> Reply {
        do {
            return try await route(request)
        } catch {
            return Self.error(error)
        }
    }

    private func route(_ request: Request) async throws(APIError) -> Reply {
        // The routes are spelled once, for the client too (ControlRoute); every value a
        // route carries is checked here.
        let route: ControlRoute
        do {
            route = try ControlRoute(method: request.method, path: request.path, query: request.query)
        } catch {
            throw error.apiError
        }
        switch route {
        case .daemon:
            var info = daemonInfo
            let gateway = await registry.gatewayState
            info.gateway = gateway?.address
            info.gatewayListening = gateway.map { $0.error == nil }
            info.gatewayError = gateway?.error
            return Self.json(info)
        case .providers:
            return Self.json(await registry.providers())
        case .gateway:
            return Self.json(await registry.gatewayStatus())
        case .connection(let name):
            return Self.json(try await registry.connection(name))
        case .list(let all):
            return Self.json(ServerList(servers: await registry.list(includeStopped: all)))
        case .start:
            let start = try decode(StartRequest.self, from: request.body)
            return Self.json(try await registry.start(start.profile), status: 201)
        case .wait(let name, let seconds):
            return Self.json(try await registry.wait(name, timeout: try Self.waitTimeout(seconds)))
        case .inspect(let name):
            return Self.json(try await registry.info(name, detailed: true))
        case .remove(let name, let force):
            return Self.json(try await registry.remove(name, force: force))
        case .stop(let name, let text):
            var timeout: TimeSpan?
            if let text {
                guard let span = TimeSpan(parsing: text), span <= Profile.Limits.maxDuration else {
                    throw APIError(
                        .invalidRequest,
                        "invalid timeout \"\(text.clippedForMessage)\"; write it like 30s or 2m (at most a year)")
                }
                timeout = span
            }
            return Self.json(try await registry.stop(name, timeout: timeout))
        case .restart(let name):
            return Self.json(try await registry.restart(name))
        case .logs(let name, let tailText, let following):
            let (files, secrets) = try await registry.logFiles(name)
            let tail = try Self.tailLines(tailText)
            let lines = files.tail(lines: tail).map { Profile.redact($0, secrets: secrets) }
            let text = Array(lines.map { $0 + "\n" }.joined().utf8)
            guard following else {
                return .text(status: 200, body: text)
            }
            return .stream(contentType: "text/plain; charset=utf-8", body: follow(files, first: text, secrets: secrets))
        }
    }

    /// The most lines one `logs` call returns: more than the rotated files hold.
    static let maxTailLines = 100_000
    static let defaultTailLines = 100

    /// `?wait=<seconds>`: any number, clamped to 0...maxWait; not a number is a 400.
    static func waitTimeout(_ text: String) throws(APIError) -> Duration {
        guard let seconds = Double(text), !seconds.isNaN else {
            throw APIError(
                .invalidRequest, "invalid wait \"\(text.clippedForMessage)\"; give a number of seconds, like wait=30")
        }
        let clamped = min(max(0, seconds), maxWait.seconds)
        return TimeSpan(seconds: clamped).duration
    }

    /// `?tail=<lines>`: a whole number of lines, clamped to maxTailLines.
    static func tailLines(_ text: String?) throws(APIError) -> Int {
        guard let text else { return defaultTailLines }
        guard let lines = Int(text), lines >= 0 else {
            // All digits but past Int: as many lines as there are.
            if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) { return maxTailLines }
            throw APIError(
                .invalidRequest, "invalid tail \"\(text.clippedForMessage)\"; give a number of lines, like tail=100")
        }
        return min(lines, maxTailLines)
    }

    /// The already-read tail, then whatever the engine writes next, until the client goes.
    /// At most `followBufferChunks` chunks wait for a client; one that does not read for
    /// that long is dropped rather than buffered for without bound (issue #10).
    private func follow(_ files: LogFiles, first: [UInt8], secrets: [String]) -> AsyncStream<[UInt8]> {
        AsyncStream(bufferingPolicy: .bufferingOldest(Self.followBufferChunks)) { continuation in
            let task = Task {
                continuation.yield(first)
                var offset = files.currentSize
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.followInterval)
                    let size = files.currentSize
                    if size < offset { offset = 0 }  // rotated (copy-truncate)
                    guard size > offset else { continue }
                    let chunk = readRange(files.path, from: offset, count: size - offset)
                    offset += chunk.count
                    guard !chunk.isEmpty else { continue }
                    // Secrets are blanked per chunk: the engine writes whole lines, and a
                    // chunk ends where the file ended when it was read.
                    let shown =
                        secrets.isEmpty
                        ? chunk : Array(Profile.redact(String(decoding: chunk, as: UTF8.self), secrets: secrets).utf8)
                    if case .dropped = continuation.yield(shown) { break }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Chunks (each at most 1 MiB, one per `followInterval`) held for a slow reader.
    static let followBufferChunks = 16

    private func readRange(_ path: String, from offset: Int, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: min(count, 1 << 20))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
        return n > 0 ? Array(bytes[0..<n]) : []
    }

    private func decode<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws(APIError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw APIError(.invalidRequest, "malformed request body: \(error)")
        }
    }

    static func json<T: Encodable>(_ value: T, status: Int = 200) -> Reply {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return .json(status: status, body: Array(try encoder.encode(value)))
        } catch {
            return Self.error(APIError(.internalError, "cannot encode reply: \(error)"))
        }
    }

    static func error(_ error: any Error) -> Reply {
        let apiError = error as? APIError ?? APIError(.internalError, "\(error)")
        let body = (try? JSONEncoder().encode(APIErrorEnvelope(error: apiError))).map(Array.init) ?? Array("{}".utf8)
        return .json(status: apiError.code.httpStatus, body: body)
    }
}
