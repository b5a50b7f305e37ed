import AgentronJSON
import NIOCore

/// Puts the name a client asked for back into a response: every `"model":"<served>"` the
/// engine writes (spaces after the colon allowed) becomes `"model":"<asked>"` (the client
/// sent an alias or a model id; the engine answers with the name it serves). Works on a
/// body as it streams: a chunk whose end could be the start of the pattern keeps that end
/// until the next chunk, and nothing else is held back, so an SSE event still leaves when
/// it arrives. A chunk with nothing to replace is passed on as it is, without a copy.
struct ModelRewriter {
    /// `"model":`
    static let key = Array(#""model":"#.utf8)
    /// The served name and the asked one, quoted as JSON strings.
    let served: [UInt8]
    let asked: [UInt8]
    private var carry: [UInt8] = []

    /// Nil when there is nothing to rewrite (the client sent the served name).
    init?(served: String, asked: String) {
        guard served != asked else { return nil }
        self.served = Array(JSONRender.quote(served).utf8)
        self.asked = Array(JSONRender.quote(asked).utf8)
    }

    enum Match: Equatable {
        case none
        /// The bytes end before the pattern could be told apart.
        case partial
        /// The served name's quoted value lies at `value`.
        case found(value: Range<Int>)
    }

    /// Whether the pattern starts at `start` of `bytes`.
    func match(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Match {
        var index = start
        for byte in Self.key {
            guard index < bytes.count else { return .partial }
            guard bytes[index] == byte else { return .none }
            index += 1
        }
        while index < bytes.count, bytes[index] == 0x20 { index += 1 }
        let valueStart = index
        for byte in served {
            guard index < bytes.count else { return .partial }
            guard bytes[index] == byte else { return .none }
            index += 1
        }
        return .found(value: valueStart..<index)
    }

    /// The chunk with the pattern replaced, less a tail that may continue in the next one.
    mutating func process(_ chunk: ByteBuffer) -> ByteBuffer {
        var input = chunk
        if !carry.isEmpty {
            input = ByteBuffer(bytes: carry)
            input.writeImmutableBuffer(chunk)
            carry = []
        }
        var output: ByteBuffer?
        var kept = input.readableBytes
        input.withUnsafeReadableBytes { bytes in
            var runStart = 0
            var index = 0
            while index < bytes.count {
                guard bytes[index] == Self.key[0] else {
                    index += 1
                    continue
                }
                switch match(bytes, at: index) {
                case .none:
                    index += 1
                case .partial:
                    carry = Array(bytes[index...])
                    kept = index
                    index = bytes.count
                case .found(let value):
                    if output == nil { output = ByteBuffer() }
                    output?.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<value.lowerBound]))
                    output?.writeBytes(asked)
                    index = value.upperBound
                    runStart = index
                }
            }
            output?.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<kept]))
        }
        if let output { return output }
        return input.getSlice(at: input.readerIndex, length: kept) ?? input
    }

    /// What is left at the end of the body.
    mutating func finish() -> [UInt8] {
        defer { carry = [] }
        return carry
    }
}
