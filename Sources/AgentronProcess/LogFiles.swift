import Glibc

/// An engine's captured stdout and stderr: `<dir>/<name>.log` plus rotated copies
/// `<name>.log.1` … `.N`, each at most `maxBytes`.
///
/// The engine writes the file directly (O_APPEND), not through a pipe to the daemon, so
/// an engine keeps running and logging while the daemon restarts (live restore). Rotation
/// is therefore copy-then-truncate, like logrotate's `copytruncate`: lines written between
/// the copy and the truncate can be lost, a trade accepted for never blocking the engine.
public struct LogFiles: Sendable {
    public let path: String
    public let maxBytes: Int
    public let keep: Int

    /// 10 MiB × (1 + 3) per server: enough to see a slow start and a crash, small on a Jetson.
    public static let defaultMaxBytes = 10 << 20
    public static let defaultKeep = 3

    public init(
        directory: String, name: String, maxBytes: Int = LogFiles.defaultMaxBytes, keep: Int = LogFiles.defaultKeep
    ) {
        self.path = "\(directory)/\(name).log"
        self.maxBytes = maxBytes
        self.keep = keep
    }

    /// Oldest first: `.N` … `.1`, then the live file.
    public var filesOldestFirst: [String] {
        (1...max(keep, 1)).reversed().map { "\(path).\($0)" } + [path]
    }

    public var currentSize: Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Rotates when the live file is over the cap. Returns whether it rotated.
    @discardableResult
    public func rotateIfNeeded() -> Bool {
        guard currentSize > maxBytes else { return false }
        for index in stride(from: keep - 1, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        guard copyFile(from: path, to: "\(path).1") else { return false }
        truncate(path, 0)
        return true
    }

    /// The last `count` lines across the rotated files and the live one.
    public func tail(lines count: Int) -> [String] {
        guard count > 0 else { return [] }
        var collected: [Substring] = []
        for file in filesOldestFirst.reversed() {
            // Saturating: `count` comes from a request (issue #10); the read is bounded by
            // the file's size anyway.
            let (bytes, overflow) = count.multipliedReportingOverflow(by: 512)
            guard let text = readTail(of: file, maxBytes: overflow ? Int.max : max(64 << 10, bytes)) else { continue }
            var lines = text.split(omittingEmptySubsequences: false, whereSeparator: Self.isNewline)
            if lines.last == "" { lines.removeLast() }
            collected = lines.suffix(count - collected.count) + collected
            if collected.count >= count { break }
        }
        return collected.map { String($0).replacingCarriageReturns }
    }

    /// The last `count` lines written to the live file after `offset` (a size read
    /// earlier): what one engine run printed, not the run before it. After a rotation the
    /// offset no longer fits and the tail of the live file is used.
    public func lines(since offset: Int, last count: Int) -> [String] {
        let size = currentSize
        guard offset <= size else { return tail(lines: count) }
        // One byte more, the newline before `offset`: readTail drops a partial first line,
        // and the line starting at `offset` is whole. At most the last 256 KiB are read.
        guard let text = readTail(of: path, maxBytes: min(size - offset + 1, 256 << 10)) else { return [] }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: Self.isNewline)
        if lines.last == "" { lines.removeLast() }
        return lines.suffix(count).map { String($0).replacingCarriageReturns }
    }

    /// The most recent non-empty line, for `up`'s progress display.
    public func lastLine() -> String? {
        guard let text = readTail(of: path, maxBytes: 8 << 10) else { return nil }
        return text.split(whereSeparator: Self.isNewline).last.map { String($0).replacingCarriageReturns }
    }

    /// "\n", and "\r\n", which Swift reads as one Character (some vLLM lines end so).
    static func isNewline(_ character: Character) -> Bool {
        character == "\n" || character == "\r\n"
    }

    /// Removes the live and rotated files (a server that is gone for good).
    public func remove() {
        for file in filesOldestFirst { unlink(file) }
    }

    private func readTail(of file: String, maxBytes: Int) -> String? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return "" }
        let start = maxBytes >= Int(size) ? 0 : Int(size) - maxBytes
        lseek(fd, off_t(start), SEEK_SET)
        var bytes = [UInt8](repeating: 0, count: Int(size) - start)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress.map { $0 + filled }, $0.count - filled) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            filled += n
        }
        var text = Substring(String(decoding: bytes[0..<filled], as: UTF8.self))
        // Started mid-file: drop the partial first line.
        if start > 0, let newline = text.firstIndex(of: "\n") { text = text[text.index(after: newline)...] }
        return String(text)
    }

    private func copyFile(from source: String, to destination: String) -> Bool {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return false }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard output >= 0 else { return false }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return n == 0 }
            var written = 0
            while written < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress.map { $0 + written }, n - written) }
                guard w > 0 else { return false }
                written += w
            }
        }
    }
}

extension String {
    /// Progress bars redraw with '\r': keep what the line finally showed.
    fileprivate var replacingCarriageReturns: String {
        guard let last = split(separator: "\r", omittingEmptySubsequences: true).last else { return self }
        return String(last)
    }
}
