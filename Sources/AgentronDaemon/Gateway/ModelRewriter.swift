import AgentronJSON
import NIOCore

/// Puts the name a client asked for back into a response: every `"model":"<served>"` the
/// engine writes becomes `"model":"<asked>"` (the client sent an alias or a model id; the
/// engine answers with the name it serves). Works on a body as it streams: a chunk whose
/// end could be the start of the pattern keeps that end until the next chunk, and nothing
/// else is held back, so an SSE event still leaves when it arrives. Engines write compact
/// JSON (vLLM's pydantic, TGI's serde, Ollama's Go encoder), which is the form matched.
struct ModelRewriter {
    let pattern: [UInt8]
    let replacement: [UInt8]
    private var carry: [UInt8] = []

    /// Nil when there is nothing to rewrite (the client sent the served name).
    init?(served: String, asked: String) {
        guard served != asked else { return nil }
        pattern = Array("\"model\":\(JSONRender.quote(served))".utf8)
        replacement = Array("\"model\":\(JSONRender.quote(asked))".utf8)
    }

    /// The chunk with the pattern replaced, less a tail that may continue in the next one.
    mutating func process(_ chunk: ByteBuffer) -> [UInt8] {
        var bytes = carry
        carry = []
        bytes.append(contentsOf: chunk.readableBytesView)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        let first = pattern[0]
        while index < bytes.count {
            if bytes[index] == first {
                let remaining = bytes.count - index
                if remaining >= pattern.count {
                    if bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
                        out.append(contentsOf: replacement)
                        index += pattern.count
                        continue
                    }
                } else if bytes[index...].elementsEqual(pattern[..<remaining]) {
                    // Could be the pattern cut by the chunk's end: wait for the rest.
                    carry = Array(bytes[index...])
                    break
                }
            }
            out.append(bytes[index])
            index += 1
        }
        return out
    }

    /// What is left at the end of the body.
    mutating func finish() -> [UInt8] {
        defer { carry = [] }
        return carry
    }
}
