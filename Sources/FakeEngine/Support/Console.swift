#if canImport(Glibc)
    import Glibc
#endif

/// Writes whole lines straight to fd 1 or 2. One write(2) per line: nothing sits in a
/// buffer when the process is SIGKILLed, and lines from the event loop and the main thread
/// never interleave mid-line.
enum Console {
    static func out(_ line: String) { write(line, to: STDOUT_FILENO) }
    static func err(_ line: String) { write(line, to: STDERR_FILENO) }

    /// Prints `text` (on stdout for code 0, else on stderr) and exits with `code`.
    static func finish(_ text: String, code: Int32) -> Never {
        write(text, to: code == 0 ? STDOUT_FILENO : STDERR_FILENO)
        Glibc.exit(code)
    }

    static func write(_ line: String, to fd: Int32) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset)
            }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

enum Clock {
    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func unixTime() -> Int { Int(time(nil)) }

    /// The wall clock (or `seconds` since the epoch) through strftime's `pattern`, in UTC
    /// unless `local`, with `digits` of the second's fraction after a dot when asked
    /// (Ollama's slog stamps have 3, TGI's tracing stamps 6, Go's RFC 3339 times 9).
    static func wall(_ pattern: String, local: Bool = false, digits: Int = 0, at seconds: Int? = nil) -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var whole = seconds.map { time_t($0) } ?? spec.tv_sec
        var parts = tm()
        if local { localtime_r(&whole, &parts) } else { gmtime_r(&whole, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        let text = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard digits > 0 else { return text }
        let fraction = String(String(spec.tv_nsec + 1_000_000_000).dropFirst().prefix(digits))
        return text + "." + fraction
    }

    /// "Tue, 25 Nov 2025 10:00:00 GMT" for the HTTP Date header.
    static func httpDate() -> String { wall("%a, %d %b %Y %H:%M:%S GMT") }

    /// Blocks the calling thread for `seconds`, through signals.
    static func sleep(_ seconds: Double) {
        var request = timespec(seconds)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }
}

extension timespec {
    /// A non-negative duration; knobs are at most Knobs.maximumSeconds, so this cannot trap.
    init(_ seconds: Double) {
        let clamped = min(max(seconds, 0), Knobs.maximumSeconds)
        self.init(tv_sec: Int(clamped), tv_nsec: Int((clamped - clamped.rounded(.towardZero)) * 1e9))
    }
}

extension String {
    /// Foundation-free `replacingOccurrences(of:with:)`.
    func replacing(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }

    /// 64 hex digits from the string (FNV-1a, four rounds): looks like a sha256, is stable.
    var fakeDigest: String {
        (0..<4).map { round in
            let hash = utf8.reduce(0xcbf2_9ce4_8422_2325 &+ UInt64(round)) {
                ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3
            }
            let text = String(hash, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }

    /// Foundation-free trim of spaces and tabs at both ends.
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
