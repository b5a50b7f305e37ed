import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Ollama's models as the fake keeps them: names (types/model/name.go), what a pull
// "downloads", keep-alive durations, and the server's memory of what is pulled and loaded.

/// A model reference: `llama3.2:1b` is registry.ollama.ai/library/llama3.2:1b;
/// `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M` keeps its host.
struct OllamaName: Sendable {
    var host = "registry.ollama.ai"
    var namespace = "library"
    var model = ""
    var tag = "latest"

    /// Nil for what Ollama rejects as an invalid model name.
    init?(_ text: String) {
        var rest = text.trimmed
        for scheme in ["https://", "http://"] where rest.hasPrefix(scheme) { rest.removeFirst(scheme.count) }
        // Only the last part may carry the tag: a host may carry a port ("localhost:5000/x").
        let lastPart = rest.lastIndex(of: "/").map { rest.index(after: $0) } ?? rest.startIndex
        if let colon = rest[lastPart...].lastIndex(of: ":") {
            tag = String(rest[rest.index(after: colon)...])
            rest = String(rest[..<colon])
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count) else { return nil }
        model = parts[parts.count - 1]
        if parts.count > 1 { namespace = parts[parts.count - 2] }
        if parts.count > 2 { host = parts[0] }
        let allowed: (Character) -> Bool = { $0.isLetter || $0.isNumber || "._-".contains($0) }
        guard ![host, namespace, model, tag].contains(where: \.isEmpty),
            [namespace, model, tag].allSatisfy({ $0.allSatisfy(allowed) })
        else { return nil }
    }

    /// What /api/ps and /v1/models show (model.Name.DisplayShortest).
    var shortName: String {
        host != "registry.ollama.ai"
            ? "\(host)/\(namespace)/\(model):\(tag)"
            : namespace != "library" ? "\(namespace)/\(model):\(tag)" : "\(model):\(tag)"
    }
    /// Ollama compares names case-insensitively.
    var key: String { shortName.lowercased() }
    /// Where `ollama pull` leaves the manifest, under OLLAMA_MODELS.
    var manifestPath: String { "manifests/\(host)/\(namespace)/\(model)/\(tag)" }
}

/// What the fake knows of a pulled model: its layers, from the name alone, so two pulls of
/// one model agree. The model layer is the big one; template, license and params follow.
struct OllamaModel: Sendable {
    var name: OllamaName
    var layers: [(digest: String, size: Int)]
    var parameterSize: String
    var family: String
    var modifiedAt = Clock.unixTime()

    init(_ name: OllamaName) {
        self.name = name
        let key = name.key
        let guesses = [
            ("70b", 42_520_413_916, "70.6B"), ("32b", 19_851_336_256, "32.8B"), ("14b", 8_988_110_976, "14.8B"),
            ("8b", 4_920_753_328, "8.0B"), ("7b", 4_683_087_332, "7.6B"), ("3b", 2_019_377_376, "3.2B"),
            ("1.5b", 986_061_216, "1.5B"), ("1b", 1_321_082_688, "1.2B"), ("0.5b", 397_807_936, "494.03M"),
        ]
        let guess = guesses.first { key.contains($0.0) }
        parameterSize = guess?.2 ?? "1.2B"
        family =
            ["qwen3", "qwen2", "gemma3", "gemma", "mistral", "phi3", "llama"].first { key.contains($0) } ?? "llama"
        layers = [("model", guess?.1 ?? 1_321_082_688), ("template", 1_429), ("license", 7_711), ("params", 96)]
            .map { ("sha256:" + (key + "#" + $0.0).fakeDigest, $0.1) }
    }

    var size: Int { layers.reduce(0) { $0 + $1.size } }
    /// The manifest's digest, which /api/ps shows as bare hex.
    var digest: String { (name.key + "#manifest").fakeDigest }
    var details: JSON {
        [
            "format": "gguf", "family": .string(family), "families": [.string(family)],
            "parameter_size": .string(parameterSize), "quantization_level": "Q8_0",
        ]
    }
}

/// Keep-alive, in seconds (infinity: forever), as Ollama's api.Duration and
/// OLLAMA_KEEP_ALIVE read it: a number of seconds or a Go duration; negative means forever.
enum KeepAlive {
    static let units: [(String, Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]

    /// OLLAMA_KEEP_ALIVE; 5 minutes when unset or unreadable.
    static func fromEnvironment(_ text: String?) -> Double {
        guard let text, !text.isEmpty else { return 300 }
        let seconds = parse(text) ?? Double(text) ?? 300
        return seconds < 0 ? .infinity : seconds
    }

    /// A request's keep_alive: nil when absent; the 400 message Go gives for a bad one.
    static func fromRequest(_ value: JSON?) -> Result<Double?, Failure> {
        switch value {
        case nil, .null?: return .success(nil)
        case .number(let seconds)?: return .success(seconds < 0 ? .infinity : seconds)
        case .string(let text)?:
            guard let seconds = parse(text) else { return .failure(Failure(message: errorMessage(text))) }
            return .success(seconds < 0 ? .infinity : seconds)
        default: return .failure(Failure(message: "Unsupported type for keep_alive"))
        }
    }

    struct Failure: Error { var message: String }

    /// Go's time.ParseDuration: "300ms", "-1.5h", "1h30m", "0"; nil where Go fails (a bare
    /// "-1" too: Go wants a unit).
    static func parse(_ text: String) -> Double? {
        var rest = Substring(text)
        let sign: Double = rest.first == "-" ? -1 : 1
        if rest.first == "-" || rest.first == "+" { rest = rest.dropFirst() }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !$0.isNumber && $0 != "." }
            rest = rest.dropFirst(unit.count)
            guard let value = Double(number), let scale = units.first(where: { $0.0 == unit })?.1 else { return nil }
            total += value * scale
        }
        return sign * total
    }

    static func errorMessage(_ text: String) -> String {
        let body = text.drop { $0 == "-" || $0 == "+" }
        let missingUnit = !body.isEmpty && body.allSatisfy { $0.isNumber || $0 == "." }
        return "time: \(missingUnit ? "missing unit in" : "invalid") duration \(JSON.quote(text))"
    }

    /// Go's Duration.String() for the server config line: "5m0s"; forever is MaxInt64 ns.
    static func goString(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "2562047h47m16.854775807s" }
        let whole = Int(min(seconds, Knobs.maximumSeconds))
        guard whole > 0 else { return "0s" }
        return (whole >= 3600 ? "\(whole / 3600)h" : "") + (whole >= 60 ? "\(whole % 3600 / 60)m" : "")
            + "\(whole % 60)s"
    }

    /// When a model loaded now expires, as Go marshals it: forever is ~292 years ahead.
    static func expiry(_ seconds: Double) -> String {
        Clock.wall("%Y-%m-%dT%H:%M:%SZ", at: Clock.unixTime() + Int(min(seconds, 9_223_372_036)))
    }
}

/// What the server has pulled and loaded, shared by the event loop and the main thread.
final class OllamaState: Sendable {
    struct Loaded: Sendable {
        var model: OllamaModel
        var expiresAt: String
        var runner: pid_t?
    }

    struct Store: Sendable {
        /// By lower-cased short name.
        var pulled: [String: OllamaModel] = [:]
        var loaded: [String: Loaded] = [:]
        /// Loads in progress: the monotonic time each is done.
        var loading: [String: Double] = [:]
        var runners: [pid_t: String] = [:]
    }

    let knobs: Knobs
    let defaultKeepAlive: Double
    let modelsDirectory: String
    /// Only an explicit OLLAMA_MODELS is written to: a test must not fill the real ~/.ollama.
    let persists: Bool
    /// Runners run as argv[0] of this process, so they are in Ollama mode too.
    let argv0: String
    let helper: pid_t?
    let store = Mutex(Store())

    init(knobs: Knobs, defaultKeepAlive: Double, modelsDirectory: String, persists: Bool, argv0: String, helper: pid_t?)
    {
        (self.knobs, self.defaultKeepAlive, self.modelsDirectory) = (knobs, defaultKeepAlive, modelsDirectory)
        (self.persists, self.argv0, self.helper) = (persists, argv0, helper)
        // The manifests `ollama pull` left: manifests/<host>/<namespace>/<model>/<tag>.
        let manifests =
            persists ? (try? FileManager.default.subpathsOfDirectory(atPath: modelsDirectory + "/manifests")) ?? [] : []
        let names = manifests.map { $0.split(separator: "/") }.filter { $0.count == 4 }.compactMap {
            OllamaName("\($0[0])/\($0[1])/\($0[2]):\($0[3])")
        }
        store.withLock { store in for name in names { store.pulled[name.key] = OllamaModel(name) } }
    }

    func pulled(_ name: OllamaName) -> OllamaModel? { store.withLock { $0.pulled[name.key] } }

    func markPulled(_ model: OllamaModel) {
        store.withLock { $0.pulled[model.name.key] = model }
        guard persists else { return }
        let path = modelsDirectory + "/" + model.name.manifestPath
        try? FileManager.default.createDirectory(
            atPath: String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]), withIntermediateDirectories: true)
        let layers = model.layers.map { JSON.object(["digest": .string($0.digest), "size": .int($0.size)]) }
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(JSON.object(["schemaVersion": 2, "layers": .array(layers)]).text.utf8))
    }

    /// An embedding-only model: its name contains "embed", or FAKE_EMBEDDING_MODELS names it.
    func isEmbedding(_ name: OllamaName) -> Bool {
        name.model.lowercased().contains("embed") || knobs.embeddingModels.contains { OllamaName($0)?.key == name.key }
    }

    /// Starts loading `model` unless it is loaded or loading, and says how long until it is
    /// in memory. The runner child starts now, as Ollama's does.
    func beginLoad(_ model: OllamaModel, keepAlive: Double) -> Double {
        let (key, now) = (model.name.key, Clock.now())
        let wait: Double? = store.withLock { store in
            if store.loaded[key] != nil {
                store.loaded[key]?.expiresAt = KeepAlive.expiry(keepAlive)
                return 0
            }
            if let done = store.loading[key] { return max(0, done - now) }
            store.loading[key] = now + knobs.loadSeconds
            return nil
        }
        if let wait { return wait }
        let blob = modelsDirectory + "/blobs/" + model.layers[0].digest.replacing(":", with: "-")
        let argv = [argv0, "runner", "--model", blob, "--port", String(Int.random(in: 32768...60999))]
        Ollama.log("INFO", "server.go:400", "starting runner", [("cmd", argv.joined(separator: " "))])
        if let runner = Children.spawn(argv) { store.withLock { $0.runners[runner] = key } }
        writePIDFile()
        return knobs.loadSeconds
    }

    /// The load is done (a no-op for a model loaded already).
    func finishLoad(_ model: OllamaModel, keepAlive: Double) {
        let key = model.name.key
        store.withLock { store in
            store.loading[key] = nil
            guard store.loaded[key] == nil else { return }
            let runner = store.runners.first { $0.value == key }?.key
            store.loaded[key] = Loaded(model: model, expiresAt: KeepAlive.expiry(keepAlive), runner: runner)
        }
    }

    /// A child exited: forget it, and the model it held.
    func runnerExited(_ pid: pid_t) -> Bool {
        store.withLock { store in
            guard let key = store.runners.removeValue(forKey: pid) else { return false }
            if store.loaded[key]?.runner == pid { store.loaded[key] = nil }
            return true
        }
    }

    /// FAKE_PID_FILE: "<server> <first runner> <helper>", rewritten when a runner starts.
    func writePIDFile() { knobs.writePIDFile(child: store.withLock { $0.runners.keys.min() }, helper: helper) }
}
