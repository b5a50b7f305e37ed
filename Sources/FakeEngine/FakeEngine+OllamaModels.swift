#if canImport(Glibc)
import Glibc
#endif

// Ollama's model names, durations and the JSON shapes of its model listings, as Ollama
// 0.12 writes them (types/model/name.go, api/types.go, server/routes.go).

/// A model reference: `llama3.2:1b` is registry.ollama.ai/library/llama3.2:1b;
/// `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M` keeps its host.
struct OllamaName: Hashable, Sendable {
    static let defaultHost = "registry.ollama.ai"
    static let defaultNamespace = "library"
    static let defaultTag = "latest"

    var host: String
    var namespace: String
    var model: String
    var tag: String

    /// Nil for what Ollama rejects as "invalid model name" (empty parts, too many parts).
    init?(_ text: String) {
        var rest = text.trimmingCharacters(in: " \t")
        for scheme in ["https://", "http://"] where rest.hasPrefix(scheme) { rest.removeFirst(scheme.count) }
        var tag = Self.defaultTag
        // Only the last part may carry the tag: a host may carry a port ("localhost:5000/x").
        let lastStart = rest.lastIndex(of: "/").map { rest.index(after: $0) } ?? rest.startIndex
        if let colon = rest[lastStart...].lastIndex(of: ":") {
            tag = String(rest[rest.index(after: colon)...])
            rest = String(rest[..<colon])
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1: (host, namespace, model) = (Self.defaultHost, Self.defaultNamespace, parts[0])
        case 2: (host, namespace, model) = (Self.defaultHost, parts[0], parts[1])
        case 3: (host, namespace, model) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        self.tag = tag
        guard ![host, namespace, model, tag].contains(where: \.isEmpty) else { return nil }
        let allowed: (Character) -> Bool = { $0.isLetter || $0.isNumber || "._-".contains($0) }
        guard model.allSatisfy(allowed), namespace.allSatisfy(allowed), tag.allSatisfy(allowed) else { return nil }
    }

    /// What /api/ps, /api/tags and /v1/models show (model.Name.DisplayShortest).
    var shortName: String {
        if host == Self.defaultHost && namespace == Self.defaultNamespace { return "\(model):\(tag)" }
        if host == Self.defaultHost { return "\(namespace)/\(model):\(tag)" }
        return "\(host)/\(namespace)/\(model):\(tag)"
    }

    /// Ollama compares names case-insensitively.
    var key: String { shortName.lowercased() }

    /// `<models>/manifests/<host>/<namespace>/<model>/<tag>`.
    var manifestPath: String { "manifests/\(host)/\(namespace)/\(model)/\(tag)" }

    /// Reads a name back from a manifest path relative to the models directory.
    init?(manifestPath: String) {
        let parts = manifestPath.split(separator: "/").map(String.init)
        guard parts.count == 5, parts[0] == "manifests" else { return nil }
        self.init("\(parts[1])/\(parts[2])/\(parts[3]):\(parts[4])")
    }
}

/// What the fixture knows of a pulled model: the layers it "downloaded" and their sizes.
struct OllamaModelInfo: Sendable {
    struct Layer: Sendable {
        var digest: String  // sha256:<64 hex>
        var size: Int64
    }

    var name: OllamaName
    var layers: [Layer]
    /// The manifest's own digest: /api/ps and /api/tags show it as bare hex.
    var manifestDigest: String
    var parameterSize: String
    var family: String
    var modifiedAt: Int

    var size: Int64 { layers.reduce(0) { $0 + $1.size } }

    /// Deterministic sizes and digests from the name, so two pulls of one model agree. The
    /// model layer is the big one; template, license and params follow, as in Ollama's library.
    init(name: OllamaName, modelBytes: Int64?) {
        self.name = name
        let lower = name.key
        let guesses: [(String, Int64, String)] = [
            ("70b", 42_520_413_916, "70.6B"), ("32b", 19_851_336_256, "32.8B"), ("14b", 8_988_110_976, "14.8B"),
            ("8b", 4_920_753_328, "8.0B"), ("7b", 4_683_087_332, "7.6B"), ("3b", 2_019_377_376, "3.2B"),
            ("1.5b", 986_061_216, "1.5B"), ("1b", 1_321_082_688, "1.2B"), ("0.5b", 397_807_936, "494.03M"),
        ]
        let guess = guesses.first { lower.contains($0.0) }
        let modelSize = modelBytes ?? guess?.1 ?? 1_321_082_688
        parameterSize = guess?.2 ?? "1.2B"
        family = ["qwen3", "qwen2", "gemma3", "gemma", "mistral", "phi3", "llama"].first { lower.contains($0) } ?? "llama"
        layers = [
            Layer(digest: "sha256:" + Self.hex(lower + "#model"), size: modelSize),
            Layer(digest: "sha256:" + Self.hex(lower + "#template"), size: 1_429),
            Layer(digest: "sha256:" + Self.hex(lower + "#license"), size: 7_711),
            Layer(digest: "sha256:" + Self.hex(lower + "#params"), size: 96),
        ]
        manifestDigest = Self.hex(lower + "#manifest")
        modifiedAt = Int(time(nil))
    }

    /// 64 hex digits derived from `seed` (FNV-1a, four rounds): looks like a sha256, is stable.
    static func hex(_ seed: String) -> String {
        var out = ""
        for round in 0..<4 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 &+ UInt64(round)
            for byte in seed.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            let text = String(hash, radix: 16)
            out += String(repeating: "0", count: 16 - text.count) + text
        }
        return out
    }

    var detailsJSON: String {
        #"{"parent_model":"","format":"gguf","family":\#(JSON.quote(family)),"families":[\#(JSON.quote(family))],"#
            + #""parameter_size":\#(JSON.quote(parameterSize)),"quantization_level":"Q8_0"}"#
    }

    /// One entry of /api/tags.
    func tagJSON() -> String {
        #"{"name":\#(JSON.quote(name.shortName)),"model":\#(JSON.quote(name.shortName)),"#
            + #""modified_at":\#(JSON.quote(OllamaTime.rfc3339(modifiedAt))),"size":\#(size),"#
            + #""digest":"\#(manifestDigest)","details":\#(detailsJSON)}"#
    }
}

/// How long a loaded model stays: Ollama's api.Duration and OLLAMA_KEEP_ALIVE.
enum KeepAlive: Equatable, Sendable {
    case forever
    case seconds(Double)

    /// OLLAMA_KEEP_ALIVE (envconfig.KeepAlive): a Go duration or whole seconds; default 5m;
    /// negative means forever.
    static func fromEnvironment(_ text: String?) -> KeepAlive {
        guard let text, !text.isEmpty else { return .seconds(300) }
        let seconds = GoDuration.parse(text) ?? Int(text).map(Double.init) ?? 300
        return seconds < 0 ? .forever : .seconds(seconds)
    }

    /// The request's keep_alive (api.Duration.UnmarshalJSON): a number of seconds, or a Go
    /// duration string; negative means forever. A string Go cannot parse is the client's
    /// error, with Go's own message.
    static func fromRequest(_ value: JSONValue?) -> Result<KeepAlive?, OllamaRequestError> {
        switch value {
        case nil, .null?: return .success(nil)
        case .number(let seconds)?: return .success(seconds < 0 ? .forever : .seconds(seconds))
        case .string(let text)?:
            guard let seconds = GoDuration.parse(text) else {
                return .failure(OllamaRequestError(status: 400, message: GoDuration.errorMessage(text)))
            }
            return .success(seconds < 0 ? .forever : .seconds(seconds))
        default:
            return .failure(OllamaRequestError(status: 400, message: "Unsupported type: '\(value.map(JSON.typeName) ?? "null")'"))
        }
    }

    /// Go's time.Duration String() for the server config line: "5m0s", "2562047h47m16.854775807s".
    var goString: String {
        switch self {
        case .forever: return "2562047h47m16.854775807s"
        case .seconds(let seconds):
            let whole = Int(seconds)
            if whole == 0 { return "0s" }
            var text = ""
            if whole >= 3600 { text += "\(whole / 3600)h" }
            if whole >= 60 { text += "\((whole % 3600) / 60)m" }
            return text + "\(whole % 60)s"
        }
    }
}

/// Go's time.ParseDuration: "300ms", "-1.5h", "1h30m", "0". Nil where Go returns an error
/// (a bare "-1" included: Go wants a unit).
enum GoDuration {
    static let units: [(String, Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]

    static func parse(_ text: String) -> Double? {
        var rest = Substring(text)
        var sign = 1.0
        if rest.first == "-" || rest.first == "+" {
            sign = rest.first == "-" ? -1 : 1
            rest = rest.dropFirst()
        }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        return sign * total
    }

    /// Go's error text, which Ollama returns as the 400 body.
    static func errorMessage(_ text: String) -> String {
        let quoted = JSON.quote(text)
        let body = text.drop { $0 == "-" || $0 == "+" }
        if !body.isEmpty, body.allSatisfy({ $0.isNumber || $0 == "." }) {
            return "time: missing unit in duration \(quoted)"
        }
        let unit = String(body.drop { $0.isNumber || $0 == "." }.prefix { !$0.isNumber && $0 != "." })
        if !unit.isEmpty, !units.contains(where: { $0.0 == unit }) {
            return "time: unknown unit \(JSON.quote(unit)) in duration \(quoted)"
        }
        return "time: invalid duration \(quoted)"
    }
}

/// A client mistake, answered with Ollama's `{"error": "..."}`.
struct OllamaRequestError: Error, Equatable {
    var status: Int
    var message: String
}

enum OllamaTime {
    /// RFC 3339 in UTC with nanoseconds, as Go's time.Time marshals: "2025-10-06T10:00:00.123456789Z".
    static func rfc3339(_ unixTime: Int, nanoseconds: Int = 0) -> String {
        var seconds = time_t(unixTime)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let base = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if nanoseconds == 0 { return base + "Z" }
        let digits = String(nanoseconds)
        return base + "." + String(repeating: "0", count: 9 - digits.count) + digits + "Z"
    }

    /// Now, with nanoseconds.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return rfc3339(Int(spec.tv_sec), nanoseconds: Int(spec.tv_nsec))
    }

    /// A time far enough ahead to stand for "never" (Go: now + MaxInt64 nanoseconds, ~292 years).
    static func expiry(_ keepAlive: KeepAlive, from start: Int) -> String {
        switch keepAlive {
        case .forever: return rfc3339(start + 9_223_372_036)
        case .seconds(let seconds): return rfc3339(start + Int(seconds))
        }
    }
}

extension JSON {
    static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension String {
    /// Foundation-free trim of the given characters at both ends.
    func trimmingCharacters(in set: String) -> String {
        let isTrimmed: (Character) -> Bool = { set.contains($0) }
        guard let first = firstIndex(where: { !isTrimmed($0) }), let last = lastIndex(where: { !isTrimmed($0) }) else { return "" }
        return String(self[first...last])
    }
}
