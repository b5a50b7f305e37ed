#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import Synchronization

// Ollama's HTTP surface as gin serves it (server/routes.go): "Ollama is running" on /, the
// native /api/* routes with {"error": "..."} bodies, streamed NDJSON for pulls and
// generation, and the OpenAI compatibility routes with OpenAI's error shape. Unlike vLLM,
// answers can wait (a load takes time) and pulls stream for seconds, so a reply may be
// deferred or a timed sequence of chunks.

/// What the event loop reads and writes, and the main thread reads on signals.
final class OllamaServerState: Sendable {
    let log: OllamaLog
    let knobs: FaultKnobs
    let ollamaKnobs: OllamaKnobs
    /// OLLAMA_KEEP_ALIVE: used when a request carries no keep_alive (every OpenAI request).
    let defaultKeepAlive: KeepAlive
    let modelsDirectory: String
    /// Only an explicit OLLAMA_MODELS is written to: a test must not fill the real ~/.ollama.
    let persistsModels: Bool
    /// What runners are started as: argv[0] of this process, so they run in Ollama mode too.
    let argv0: String
    let mainPID: pid_t
    let helperPID: pid_t?
    /// FAKE_HANG_AFTER fired: accept, read, never answer.
    let hung = Atomic<Bool>(false)
    let store: Mutex<Store>

    struct Loaded: Sendable {
        var info: OllamaModelInfo
        var keepAlive: KeepAlive
        /// Unix time it expires; nil for forever.
        var expiresAt: Int?
        var runnerPID: pid_t?
    }

    struct Store: Sendable {
        /// Pulled models by lower-cased short name.
        var pulled: [String: OllamaModelInfo] = [:]
        var loaded: [String: Loaded] = [:]
        /// Loads in progress: monotonic time each will be done.
        var loading: [String: Double] = [:]
        var runners: [pid_t: String] = [:]
    }

    init(
        log: OllamaLog, knobs: FaultKnobs, ollamaKnobs: OllamaKnobs, defaultKeepAlive: KeepAlive, modelsDirectory: String,
        persistsModels: Bool, argv0: String, helperPID: pid_t?, pulled: [String: OllamaModelInfo]
    ) {
        self.log = log
        self.knobs = knobs
        self.ollamaKnobs = ollamaKnobs
        self.defaultKeepAlive = defaultKeepAlive
        self.modelsDirectory = modelsDirectory
        self.persistsModels = persistsModels
        self.argv0 = argv0
        self.mainPID = getpid()
        self.helperPID = helperPID
        self.store = Mutex(Store(pulled: pulled))
    }

    func pulledModel(_ name: OllamaName) -> OllamaModelInfo? {
        store.withLock { $0.pulled[name.key] }
    }

    /// An embedding-only model (its GGUF has a pooling type, so Ollama lists "embedding"
    /// and not "completion"): any name containing "embed", and FAKE_EMBEDDING_MODELS.
    func isEmbedding(_ name: OllamaName) -> Bool {
        if name.model.lowercased().contains("embed") { return true }
        return ollamaKnobs.embeddingModels.contains { OllamaName($0)?.key == name.key }
    }

    // MARK: Loading and unloading

    /// Starts loading `info` unless it is loaded or loading; returns how long until it is
    /// in memory (0 when it already is). The runner child starts now, like Ollama's.
    func beginLoad(_ info: OllamaModelInfo, keepAlive: KeepAlive) -> Double {
        let key = info.name.key
        let now = Clock.now()
        enum Step { case loaded, waiting(Double), start }
        let step: Step = store.withLock { store in
            if var loaded = store.loaded[key] {
                loaded.keepAlive = keepAlive
                loaded.expiresAt = Self.expiry(keepAlive)
                store.loaded[key] = loaded
                return .loaded
            }
            if let ready = store.loading[key], ready > now { return .waiting(ready - now) }
            store.loading[key] = now + knobs.loadSeconds
            return .start
        }
        switch step {
        case .loaded: return 0
        case .waiting(let remaining): return remaining
        case .start:
            let runner = ollamaKnobs.noRunner ? nil : spawnRunner(for: info)
            if let runner { store.withLock { $0.runners[runner] = key } }
            pendingRunner.withLock { $0[key] = runner }
            writePIDFile()
            return knobs.loadSeconds
        }
    }

    /// Runner pids of loads in progress, moved into `loaded` by `finishLoad`.
    private let pendingRunner = Mutex<[String: pid_t?]>([:])

    /// The load is done: the model is in memory until its keep-alive runs out.
    func finishLoad(_ info: OllamaModelInfo, keepAlive: KeepAlive, startedAt: Double) {
        let key = info.name.key
        let runner = pendingRunner.withLock { $0.removeValue(forKey: key) } ?? nil
        let added: Bool = store.withLock { store in
            store.loading[key] = nil
            guard store.loaded[key] == nil else { return false }
            store.loaded[key] = Loaded(info: info, keepAlive: keepAlive, expiresAt: Self.expiry(keepAlive), runnerPID: runner)
            return true
        }
        if added {
            let seconds = max(Clock.now() - startedAt, 0.01)
            log.info("server.go:1289", "llama runner started in \(String(Double(Int(seconds * 100)) / 100)) seconds")
        }
    }

    static func expiry(_ keepAlive: KeepAlive) -> Int? {
        switch keepAlive {
        case .forever: nil
        case .seconds(let seconds): Int(time(nil)) + Int(seconds.rounded(.up))
        }
    }

    /// Unloads models whose keep-alive ran out (Ollama's scheduler does it on a timer; here
    /// on every request and on a timer set at load).
    func expireDue() {
        let now = Int(time(nil))
        let expired: [Loaded] = store.withLock { store in
            let due = store.loaded.filter { entry in entry.value.expiresAt.map { $0 <= now } ?? false }
            for key in due.keys { store.loaded[key] = nil }
            return Array(due.values)
        }
        for model in expired { unload(model) }
    }

    /// keep_alive 0 with no prompt: unload now.
    func unloadNow(_ name: OllamaName) {
        let removed = store.withLock { $0.loaded.removeValue(forKey: name.key) }
        if let removed { unload(removed) }
    }

    private func unload(_ model: Loaded) {
        log.info("sched.go:551", "unloading model", [("model", model.info.name.shortName)])
        if let runner = model.runnerPID { kill(runner, SIGTERM) }
    }

    /// Every runner still running; the main thread stops them on shutdown.
    func runnerPIDs() -> [pid_t] {
        store.withLock { Array($0.runners.keys) }
    }

    /// A child exited (the main thread reaped it): forget it and what it served.
    func runnerExited(_ pid: pid_t) -> Bool {
        store.withLock { store in
            guard let key = store.runners.removeValue(forKey: pid) else { return false }
            if store.loaded[key]?.runnerPID == pid { store.loaded[key] = nil }
            return true
        }
    }

    /// `ollama runner --model <blob> --port <n>`: this binary re-executed under argv[0]
    /// `ollama`, in the server's process group and session, as Ollama starts its runners.
    private func spawnRunner(for info: OllamaModelInfo) -> pid_t? {
        let blob = modelsDirectory + "/blobs/" + info.layers[0].digest.replacingOccurrences(of: ":", with: "-")
        let port = String(Int.random(in: 32768...60999))
        let argv = [argv0, "runner", "--model", blob, "--port", port]
        log.info("server.go:400", "starting runner", [("cmd", argv.joined(separator: " "))])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for pointer in cArgs { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/proc/self/exe", nil, &attributes, cArgs, environ)
        guard result == 0 else {
            log.error("server.go:400", "failed to start runner", [("error", String(cString: strerror(result)))])
            return nil
        }
        return pid
    }

    /// FAKE_PID_FILE: "<server> <first runner> <helper>", rewritten when a runner starts.
    func writePIDFile() {
        guard let path = knobs.pidFile else { return }
        let runner = store.withLock { $0.runners.keys.min() }
        Faults.writePIDFile(path, main: mainPID, engineCore: runner, helper: helperPID)
    }

    // MARK: Pulled models

    func markPulled(_ info: OllamaModelInfo) {
        store.withLock { $0.pulled[info.name.key] = info }
        guard persistsModels else { return }
        let path = modelsDirectory + "/" + info.name.manifestPath
        OllamaModelStore.writeManifest(path: path, info: info)
    }

    func delete(_ name: OllamaName) -> Bool {
        let removed = store.withLock { $0.pulled.removeValue(forKey: name.key) } != nil
        if removed, persistsModels { unlink(modelsDirectory + "/" + name.manifestPath) }
        return removed
    }
}

/// One step of a streamed reply: wait `delay` seconds, run `action`, send `chunk`.
struct OllamaStreamStep: Sendable {
    var delay: Double
    var chunk: String
    var action: (@Sendable () -> Void)?

    init(delay: Double = 0, _ chunk: String, action: (@Sendable () -> Void)? = nil) {
        self.delay = delay
        self.chunk = chunk
        self.action = action
    }
}

/// A reply the handler writes: now, later, or as a timed stream.
enum OllamaReply: Sendable {
    case full(status: HTTPResponseStatus, contentType: String?, body: String)
    /// 200 with a chunked body: NDJSON lines or SSE events, each after its delay.
    case stream(contentType: String, steps: [OllamaStreamStep])
    /// Computed after `seconds` (a model loading first).
    case deferred(seconds: Double, then: @Sendable () -> OllamaReply)
    /// Hung: say nothing.
    case silence

    static func json(_ status: HTTPResponseStatus, _ body: String) -> OllamaReply {
        .full(status: status, contentType: "application/json; charset=utf-8", body: body)
    }

    /// Ollama's own error body.
    static func error(_ status: HTTPResponseStatus, _ message: String) -> OllamaReply {
        json(status, #"{"error":\#(JSON.quote(message))}"#)
    }

    /// The OpenAI compatibility layer's error body (openai.NewError).
    static func openAIError(_ status: HTTPResponseStatus, _ message: String) -> OllamaReply {
        let type =
            switch status.code {
            case 400: "invalid_request_error"
            case 404: "not_found_error"
            default: "api_error"
            }
        return json(status, #"{"error":{"message":\#(JSON.quote(message)),"type":"\#(type)","param":null,"code":null}}"#)
    }
}

enum OllamaRoutes {
    /// Paths gin knows, with their methods: another method is 405, another path 404.
    static let table: [String: [String]] = [
        "/": ["GET", "HEAD"],
        "/api/version": ["GET", "HEAD"],
        "/api/tags": ["GET", "HEAD"],
        "/api/ps": ["GET"],
        "/api/pull": ["POST"],
        "/api/generate": ["POST"],
        "/api/chat": ["POST"],
        "/api/delete": ["DELETE"],
        "/api/show": ["POST"],
        "/api/embed": ["POST"],
        "/v1/models": ["GET"],
        "/v1/chat/completions": ["POST"],
    ]

    /// Replies are capped at this many tokens unless the request asks for fewer.
    static let maximumReplyTokens = 64
    static let emptyPromptReply = "Hello! This is a fake Ollama engine."
    /// Ollama reports pull progress every 60 ms (blobDownload.Wait's ticker).
    static let pullTick = 0.06
    /// The registry round trip before an unknown model's "file does not exist".
    static let manifestLookupDelay = 0.1
    /// FAKE_PULL_SPLIT: the gap between a line's two halves, long enough for the client to
    /// read them separately.
    static let splitGap = 0.01

    static func reply(method: HTTPMethod, uri: String, body: [UInt8], state: OllamaServerState) -> OllamaReply {
        if state.hung.load(ordering: .acquiring) { return .silence }
        let path = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        guard let methods = table[path] else {
            return .full(status: .notFound, contentType: "text/plain", body: "404 page not found")
        }
        guard methods.contains(method.rawValue) else {
            return .full(status: .methodNotAllowed, contentType: "text/plain", body: "405 method not allowed")
        }
        state.expireDue()
        switch path {
        case "/":
            return .full(status: .ok, contentType: "text/plain; charset=utf-8", body: "Ollama is running")
        case "/api/version":
            return .json(.ok, #"{"version":"\#(Ollama.version)"}"#)
        case "/api/tags":
            let models = state.store.withLock { Array($0.pulled.values) }.sorted { $0.modifiedAt > $1.modifiedAt }
            return .json(.ok, #"{"models":[\#(models.map { $0.tagJSON() }.joined(separator: ","))]}"#)
        case "/api/ps":
            return .json(.ok, ps(state))
        case "/v1/models":
            return .json(.ok, openAIModels(state))
        default:
            break
        }

        let json: JSONValue
        switch parseBody(body) {
        case .success(let parsed): json = parsed
        case .failure(let failure):
            return path.hasPrefix("/v1/") ? .openAIError(.badRequest, failure.message) : .error(.badRequest, failure.message)
        }
        switch path {
        case "/api/pull": return pull(json, state: state)
        case "/api/generate": return generate(json, chat: false, state: state)
        case "/api/chat": return generate(json, chat: true, state: state)
        case "/api/delete": return delete(json, state: state)
        case "/api/show": return show(json, state: state)
        case "/api/embed": return embed(json, state: state)
        case "/v1/chat/completions": return openAIChat(json, state: state)
        default: return .full(status: .notFound, contentType: "text/plain", body: "404 page not found")
        }
    }

    static func parseBody(_ body: [UInt8]) -> Result<JSONValue, OllamaRequestError> {
        guard !body.isEmpty else { return .failure(OllamaRequestError(status: 400, message: "missing request body")) }
        do {
            let json = try JSON.parse(body)
            guard json.isObject else {
                return .failure(OllamaRequestError(status: 400, message: "json: cannot unmarshal \(JSON.typeName(json)) into Go value"))
            }
            return .success(json)
        } catch {
            let character = error.offset < body.count ? String(decoding: [body[error.offset]], as: UTF8.self) : "EOF"
            return .failure(OllamaRequestError(status: 400, message: "invalid character '\(character)' looking for beginning of value"))
        }
    }

    // MARK: Listings

    static func ps(_ state: OllamaServerState) -> String {
        let loaded = state.store.withLock { Array($0.loaded.values) }
            .sorted { ($0.expiresAt ?? Int.max) > ($1.expiresAt ?? Int.max) }
        let now = Int(time(nil))
        let entries = loaded.map { model in
            let name = JSON.quote(model.info.name.shortName)
            let expires = model.expiresAt.map { OllamaTime.rfc3339($0) } ?? OllamaTime.expiry(.forever, from: now)
            return #"{"name":\#(name),"model":\#(name),"size":\#(model.info.size + 268_435_456),"#
                + #""digest":"\#(model.info.manifestDigest)","details":\#(model.info.detailsJSON),"#
                + #""expires_at":"\#(expires)","size_vram":0,"context_length":4096}"#
        }
        return #"{"models":[\#(entries.joined(separator: ","))]}"#
    }

    /// openai.ToListCompletion: `data` is Go's nil slice (null) when nothing is pulled.
    static func openAIModels(_ state: OllamaServerState) -> String {
        let models = state.store.withLock { Array($0.pulled.values) }.sorted { $0.modifiedAt > $1.modifiedAt }
        guard !models.isEmpty else { return #"{"object":"list","data":null}"# }
        let cards = models.map { info in
            #"{"id":\#(JSON.quote(info.name.shortName)),"object":"model","created":\#(info.modifiedAt),"owned_by":\#(JSON.quote(info.name.namespace))}"#
        }
        return #"{"object":"list","data":[\#(cards.joined(separator: ","))]}"#
    }

    // MARK: Pull

    /// /api/pull: "pulling manifest", each layer's progress, "verifying sha256 digest",
    /// "writing manifest", "success". An unknown model answers 200 and then an error line,
    /// as Ollama does once the stream has begun.
    static func pull(_ json: JSONValue, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? json["name"]?.stringValue ?? ""
        guard let name = OllamaName(requested) else { return .error(.badRequest, "invalid model name") }
        let streaming = json["stream"]?.boolValue ?? true
        let unknown = isUnknown(requested, name: name, knobs: state.ollamaKnobs)
        let cached = state.pulledModel(name)
        let info = cached ?? OllamaModelInfo(name: name, modelBytes: state.ollamaKnobs.modelBytes)

        // Offline: PullModel asks the registry for the manifest first, for a model it already
        // has too, and the transport error comes back as "pull model manifest: <url.Error>"
        // (server/images.go PullModel, makeRequestWithRetry logs "request failed: ...").
        let unreachable = state.ollamaKnobs.registryUnreachable ? registryError(name) : nil
        if let unreachable {
            state.log.info("images.go:1015", "request failed: \(unreachable)")
        }
        if !streaming {
            // waitForStream: the last progress, or the error with status 500.
            if let unreachable { return .error(.internalServerError, "pull model manifest: \(unreachable)") }
            if unknown { return .error(.internalServerError, "pull model manifest: file does not exist") }
            let seconds = cached == nil ? state.ollamaKnobs.pullSeconds : 0
            return .deferred(seconds: seconds) {
                state.markPulled(info)
                return .json(.ok, #"{"status":"success"}"#)
            }
        }

        var steps = [OllamaStreamStep(line(#"{"status":"pulling manifest"}"#))]
        if let unreachable {
            let message = JSON.quote("pull model manifest: \(unreachable)")
            steps.append(OllamaStreamStep(delay: manifestLookupDelay, line(#"{"error":\#(message)}"#)))
            return .stream(contentType: "application/x-ndjson", steps: state.ollamaKnobs.splitPullLines ? split(steps) : steps)
        }
        if unknown {
            steps.append(OllamaStreamStep(delay: manifestLookupDelay, line(#"{"error":"pull model manifest: file does not exist"}"#)))
            return .stream(contentType: "application/x-ndjson", steps: state.ollamaKnobs.splitPullLines ? split(steps) : steps)
        }
        for (index, layer) in info.layers.enumerated() {
            let short = String(layer.digest.dropFirst(7).prefix(12))
            func progress(_ completed: Int64) -> String {
                line(#"{"status":"pulling \#(short)","digest":"\#(layer.digest)","total":\#(layer.size),"completed":\#(completed)}"#)
            }
            if cached != nil || index > 0 {
                // A blob already on disk, or a small one: done at once.
                steps.append(OllamaStreamStep(progress(layer.size)))
                continue
            }
            let ticks = max(1, Int((state.ollamaKnobs.pullSeconds / pullTick).rounded()))
            let parts = max(1, Int(layer.size / 100_000_000))
            steps.append(OllamaStreamStep(progress(0)) {
                state.log.info("download.go:177", "downloading \(short) in \(min(parts, 16)) \(Ollama.humanBytes(layer.size / Int64(min(parts, 16)))) part(s)")
            })
            for tick in 1...ticks {
                steps.append(OllamaStreamStep(delay: state.ollamaKnobs.pullSeconds / Double(ticks), progress(layer.size * Int64(tick) / Int64(ticks))))
            }
        }
        steps.append(OllamaStreamStep(line(#"{"status":"verifying sha256 digest"}"#)))
        steps.append(OllamaStreamStep(line(#"{"status":"writing manifest"}"#)) { state.markPulled(info) })
        steps.append(OllamaStreamStep(line(#"{"status":"success"}"#)))
        return .stream(contentType: "application/x-ndjson", steps: state.ollamaKnobs.splitPullLines ? split(steps) : steps)
    }

    /// FAKE_PULL_SPLIT: each line as two chunks, cut in the middle of the JSON.
    static func split(_ steps: [OllamaStreamStep]) -> [OllamaStreamStep] {
        steps.flatMap { step -> [OllamaStreamStep] in
            let cut = step.chunk.index(step.chunk.startIndex, offsetBy: step.chunk.count / 2)
            return [
                OllamaStreamStep(delay: step.delay, String(step.chunk[..<cut]), action: step.action),
                OllamaStreamStep(delay: splitGap, String(step.chunk[cut...])),
            ]
        }
    }

    /// Go's url.Error for a registry that cannot be resolved: the manifest URL is
    /// n.BaseURL() + /v2/<namespace>/<model>/manifests/<tag> (pullModelManifest).
    static func registryError(_ name: OllamaName) -> String {
        let url = "https://\(name.host)/v2/\(name.namespace)/\(name.model)/manifests/\(name.tag)"
        return "Get \"\(url)\": dial tcp: lookup \(name.host): no such host"
    }

    // MARK: Show and embed

    /// /api/show (ShowHandler): `model`, or the older `name`; 404 "model '<name>' not found"
    /// for a model not in the store; for one that is, its details and, since Ollama 0.6.4,
    /// `capabilities` (completion for a generating model, embedding for an embedding one).
    static func show(_ json: JSONValue, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? json["name"]?.stringValue ?? ""
        guard !requested.isEmpty else { return .error(.badRequest, "model is required") }
        guard let name = OllamaName(requested) else { return .error(.badRequest, "invalid model name") }
        guard let info = state.pulledModel(name) else { return .error(.notFound, "model '\(requested)' not found") }
        let embedding = state.isEmbedding(name)
        let capabilities = embedding ? #"["embedding"]"# : #"["completion"]"#
        let architecture = embedding ? "nomic-bert" : info.family
        let modelInfo =
            #"{"general.architecture":\#(JSON.quote(architecture)),"general.parameter_count":1235814432,"#
            + #""\#(architecture).context_length":\#(embedding ? 2048 : 131072),"\#(architecture).embedding_length":\#(embedding ? 768 : 2048)}"#
        let template = embedding ? "{{ .Prompt }}" : "{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}"
        return .json(
            .ok,
            #"{"license":"","modelfile":\#(JSON.quote("# Modelfile generated by \"ollama show\"\nFROM \(info.name.shortName)\n")),"#
                + #""parameters":"","template":\#(JSON.quote(template)),"details":\#(info.detailsJSON),"#
                + #""model_info":\#(modelInfo),"capabilities":\#(capabilities),"#
                + #""modified_at":\#(JSON.quote(OllamaTime.rfc3339(info.modifiedAt)))}"#)
    }

    /// /api/embed (EmbedHandler): `input` is a string, a list of strings or absent; the model
    /// is loaded (a runner starts) before the input is looked at, so an empty input loads it
    /// and answers `{"model":…,"embeddings":[]}`. Otherwise one fake vector per input.
    static func embed(_ json: JSONValue, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue ?? ""
        var inputs: [String] = []
        switch json["input"] {
        case nil, .null?: break
        case .string(let text)?: if !text.isEmpty { inputs = [text] }
        case .array(let items)?:
            for item in items {
                guard case .string(let text) = item else { return .error(.badRequest, "invalid input type") }
                inputs.append(text)
            }
        default: return .error(.badRequest, "invalid input type")
        }
        let info: OllamaModelInfo
        switch resolve(requested, state: state) {
        case .success(let resolved): info = resolved
        case .failure(let failure): return .error(HTTPResponseStatus(statusCode: failure.status), failure.message)
        }
        let keepAlive: KeepAlive?
        switch KeepAlive.fromRequest(json["keep_alive"]) {
        case .success(let parsed): keepAlive = parsed
        case .failure(let failure): return .error(.badRequest, failure.message)
        }
        let model = JSON.quote(requested)
        let texts = inputs
        return afterLoad(info, keepAlive: keepAlive ?? state.defaultKeepAlive, state: state) {
            let inputs = texts
            guard !inputs.isEmpty else { return .json(.ok, #"{"model":\#(model),"embeddings":[]}"#) }
            let vectors = inputs.map { text in
                let seed = OllamaModelInfo.hex(text)
                let values = (0..<8).map { index -> String in
                    let byte = Int(seed.utf8.dropFirst(index * 2).first ?? 48) % 16
                    return String(Double(byte - 8) / 8)
                }
                return "[" + values.joined(separator: ",") + "]"
            }
            let tokens = inputs.reduce(0) { $0 + VLLMCompletions.wordCount($1) + 2 }
            return .json(
                .ok,
                #"{"model":\#(model),"embeddings":[\#(vectors.joined(separator: ","))],"total_duration":12345678,"#
                    + #""load_duration":1234567,"prompt_eval_count":\#(tokens)}"#)
        }
    }

    /// FAKE_PULL_UNKNOWN names, and any name containing "does-not-exist".
    static func isUnknown(_ requested: String, name: OllamaName, knobs: OllamaKnobs) -> Bool {
        if requested.lowercased().contains("does-not-exist") { return true }
        return knobs.unknownModels.contains { OllamaName($0)?.key == name.key || $0 == requested }
    }

    static func line(_ json: String) -> String { json + "\n" }

    static func delete(_ json: JSONValue, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue ?? json["name"]?.stringValue ?? ""
        guard let name = OllamaName(requested) else { return .error(.badRequest, "name \"\(requested)\" is invalid") }
        guard state.delete(name) else { return .error(.notFound, "model '\(requested)' not found") }
        state.unloadNow(name)
        return .full(status: .ok, contentType: nil, body: "")
    }

    // MARK: Generation

    /// The model a generation request names, pulled; or the error Ollama answers.
    static func resolve(_ requested: String, state: OllamaServerState) -> Result<OllamaModelInfo, OllamaRequestError> {
        guard !requested.isEmpty else { return .failure(OllamaRequestError(status: 400, message: "model is required")) }
        guard let name = OllamaName(requested) else { return .failure(OllamaRequestError(status: 400, message: "invalid model name")) }
        guard let info = state.pulledModel(name) else {
            return .failure(OllamaRequestError(status: 404, message: "model '\(requested)' not found"))
        }
        return .success(info)
    }

    /// Runs `answer` once the model is in memory: at once when it is loaded, after the
    /// load time otherwise.
    static func afterLoad(
        _ info: OllamaModelInfo, keepAlive: KeepAlive, state: OllamaServerState, _ answer: @escaping @Sendable () -> OllamaReply
    ) -> OllamaReply {
        let started = Clock.now()
        let wait = state.beginLoad(info, keepAlive: keepAlive)
        guard wait > 0 else { return answer() }
        return .deferred(seconds: wait) {
            state.finishLoad(info, keepAlive: keepAlive, startedAt: started)
            state.writePIDFile()
            return answer()
        }
    }

    /// /api/generate and /api/chat: no prompt (no messages) loads the model (keep_alive 0:
    /// unloads it); otherwise the fake answers by echoing the prompt, streamed by default.
    static func generate(_ json: JSONValue, chat: Bool, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue ?? ""
        let info: OllamaModelInfo
        switch resolve(requested, state: state) {
        case .success(let resolved): info = resolved
        case .failure(let failure): return .error(HTTPResponseStatus(statusCode: failure.status), failure.message)
        }
        // scheduleRunner asks for CapabilityCompletion, which an embedding model lacks: 400
        // before anything loads, with or without a prompt (GenerateHandler/ChatHandler).
        if state.isEmbedding(info.name) {
            return .error(.badRequest, "\(JSON.quote(requested)) does not support \(chat ? "chat" : "generate")")
        }
        let keepAlive: KeepAlive?
        switch KeepAlive.fromRequest(json["keep_alive"]) {
        case .success(let parsed): keepAlive = parsed
        case .failure(let failure): return .error(.badRequest, failure.message)
        }
        let prompt: String
        if chat {
            let messages = json["messages"]?.arrayValue ?? []
            prompt = messages.last { $0["role"]?.stringValue == "user" }.map { VLLMCompletions.text(of: $0["content"]) } ?? ""
            if messages.isEmpty { return loadOrUnload(info, requested: requested, keepAlive: keepAlive, chat: true, state: state) }
        } else {
            prompt = json["prompt"]?.stringValue ?? ""
            if prompt.isEmpty { return loadOrUnload(info, requested: requested, keepAlive: keepAlive, chat: false, state: state) }
        }
        let streaming = json["stream"]?.boolValue ?? true
        let words = reply(to: prompt, maxTokens: json["options"]?["num_predict"]?.intValue)
        return afterLoad(info, keepAlive: keepAlive ?? state.defaultKeepAlive, state: state) {
            nativeAnswer(model: requested, words: words, chat: chat, streaming: streaming, promptTokens: VLLMCompletions.wordCount(prompt) + 1)
        }
    }

    static func loadOrUnload(_ info: OllamaModelInfo, requested: String, keepAlive: KeepAlive?, chat: Bool, state: OllamaServerState) -> OllamaReply {
        let model = JSON.quote(requested)
        let empty = chat ? #""message":{"role":"assistant","content":""}"# : #""response":"""#
        if keepAlive == .seconds(0) {
            state.unloadNow(info.name)
            return .json(.ok, #"{"model":\#(model),"created_at":"\#(OllamaTime.now())",\#(empty),"done":true,"done_reason":"unload"}"#)
        }
        return afterLoad(info, keepAlive: keepAlive ?? state.defaultKeepAlive, state: state) {
            .json(.ok, #"{"model":\#(model),"created_at":"\#(OllamaTime.now())",\#(empty),"done":true,"done_reason":"load"}"#)
        }
    }

    static func reply(to prompt: String, maxTokens: Int?) -> [String] {
        var words = prompt.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        if words.isEmpty { words = emptyPromptReply.split(separator: " ").map(String.init) }
        let limit = min(maxTokens.map { $0 < 0 ? maximumReplyTokens : $0 } ?? maximumReplyTokens, maximumReplyTokens)
        return words.prefix(max(limit, 0)).enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }
    }

    static func nativeAnswer(model: String, words: [String], chat: Bool, streaming: Bool, promptTokens: Int) -> OllamaReply {
        let model = JSON.quote(model)
        func piece(_ text: String) -> String {
            chat ? #""message":{"role":"assistant","content":\#(JSON.quote(text))}"# : #""response":\#(JSON.quote(text))"#
        }
        let metrics =
            #""total_duration":123456789,"load_duration":1234567,"prompt_eval_count":\#(promptTokens),"#
            + #""prompt_eval_duration":2345678,"eval_count":\#(words.count),"eval_duration":34567890"#
        if !streaming {
            return .json(.ok, #"{"model":\#(model),"created_at":"\#(OllamaTime.now())",\#(piece(words.joined())),"done":true,"done_reason":"stop",\#(metrics)}"#)
        }
        var steps = words.map { word in
            OllamaStreamStep(line(#"{"model":\#(model),"created_at":"\#(OllamaTime.now())",\#(piece(word)),"done":false}"#))
        }
        steps.append(OllamaStreamStep(line(#"{"model":\#(model),"created_at":"\#(OllamaTime.now())",\#(piece("")),"done":true,"done_reason":"stop",\#(metrics)}"#)))
        return .stream(contentType: "application/x-ndjson", steps: steps)
    }

    // MARK: OpenAI compatibility

    /// /v1/chat/completions (openai.ChatMiddleware around the chat handler). keep_alive is
    /// not part of OpenAI's request: the server's OLLAMA_KEEP_ALIVE applies.
    static func openAIChat(_ json: JSONValue, state: OllamaServerState) -> OllamaReply {
        let requested = json["model"]?.stringValue ?? ""
        guard let messages = json["messages"]?.arrayValue, !messages.isEmpty else {
            return .openAIError(.badRequest, "[] is too short - 'messages'")
        }
        let info: OllamaModelInfo
        switch resolve(requested, state: state) {
        case .success(let resolved): info = resolved
        case .failure(let failure): return .openAIError(HTTPResponseStatus(statusCode: failure.status), failure.message)
        }
        if state.isEmbedding(info.name) {
            return .openAIError(.badRequest, "\(JSON.quote(requested)) does not support chat")
        }
        let contents = messages.map { ($0["role"]?.stringValue, VLLMCompletions.text(of: $0["content"])) }
        let prompt = contents.last { $0.0 == "user" }?.1 ?? ""
        let promptTokens = contents.reduce(0) { $0 + VLLMCompletions.wordCount($1.1) + 4 } + 1
        let maxTokens = json["max_completion_tokens"]?.intValue ?? json["max_tokens"]?.intValue
        let words = reply(to: prompt, maxTokens: maxTokens)
        let truncated = maxTokens.map { prompt.split(separator: " ").count > $0 } ?? false
        let streaming = json["stream"]?.boolValue ?? false
        let includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
        return afterLoad(info, keepAlive: state.defaultKeepAlive, state: state) {
            openAIAnswer(
                model: requested, words: words, finishReason: truncated ? "length" : "stop", streaming: streaming,
                includeUsage: includeUsage, promptTokens: promptTokens)
        }
    }

    static func openAIAnswer(
        model: String, words: [String], finishReason: String, streaming: Bool, includeUsage: Bool, promptTokens: Int
    ) -> OllamaReply {
        let id = "chatcmpl-\(Int.random(in: 100...999))"
        let created = Clock.unixTime()
        let model = JSON.quote(model)
        let usage = #"{"prompt_tokens":\#(promptTokens),"completion_tokens":\#(words.count),"total_tokens":\#(promptTokens + words.count)}"#
        if !streaming {
            return .json(
                .ok,
                #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":\#(model),"system_fingerprint":"fp_ollama","#
                    + #""choices":[{"index":0,"message":{"role":"assistant","content":\#(JSON.quote(words.joined()))},"finish_reason":"\#(finishReason)"}],"#
                    + #""usage":\#(usage)}"#)
        }
        let prefix = #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":\#(model),"system_fingerprint":"fp_ollama","choices":["#
        var steps = words.map { word in
            OllamaStreamStep("data: " + prefix + #"{"index":0,"delta":{"role":"assistant","content":\#(JSON.quote(word))},"finish_reason":null}]}"# + "\n\n")
        }
        steps.append(OllamaStreamStep("data: " + prefix + #"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"\#(finishReason)"}]}"# + "\n\n"))
        if includeUsage {
            steps.append(OllamaStreamStep("data: " + prefix + #"],"usage":\#(usage)}"# + "\n\n"))
        }
        steps.append(OllamaStreamStep("data: [DONE]\n\n"))
        return .stream(contentType: "text/event-stream", steps: steps)
    }
}

/// Reads requests and writes replies through the channel, so deferred and streamed
/// replies (written from scheduled tasks) go the same way as immediate ones.
/// HTTPServerPipelineHandler holds pipelined requests until a reply's end is written.
final class OllamaHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBodyBytes = 32 << 20

    private let state: OllamaServerState
    private var pending = RequestAccumulator(maximumBodyBytes: OllamaHTTPHandler.maximumBodyBytes)

    init(state: OllamaServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            pending.begin(requestHead)
        case .body(let chunk):
            pending.append(chunk)
        case .end:
            guard let (requestHead, body, bodyTooLarge) = pending.finish() else { return }
            let reply: OllamaReply =
                bodyTooLarge
                ? .error(.payloadTooLarge, "http: request body too large")
                : OllamaRoutes.reply(method: requestHead.method, uri: requestHead.uri, body: body, state: state)
            let peer = context.remoteAddress?.ipAddress ?? "-"
            Self.deliver(reply, for: requestHead, peer: peer, channel: context.channel, state: state, started: Clock.now())
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    static func deliver(
        _ reply: OllamaReply, for request: HTTPRequestHead, peer: String, channel: Channel, state: OllamaServerState, started: Double
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "date", value: Clock.httpDate())
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        let isHead = request.method == .HEAD

        switch reply {
        case .silence:
            return
        case .deferred(let seconds, let then):
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
                guard channel.isActive else { return }
                deliver(then(), for: request, peer: peer, channel: channel, state: state, started: started)
            }
            return
        case .full(let status, let contentType, let text):
            let bytes = ByteBuffer(string: text)
            if let contentType { headers.add(name: "content-type", value: contentType) }
            headers.add(name: "content-length", value: String(bytes.readableBytes))
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: request.version, status: status, headers: headers)), promise: nil)
            if bytes.readableBytes > 0, !isHead { channel.write(HTTPServerResponsePart.body(.byteBuffer(bytes)), promise: nil) }
            finish(status: status, request: request, peer: peer, channel: channel, state: state, started: started)
        case .stream(let contentType, let steps):
            // No content-length: NIO sends HTTP/1.1 chunked, one chunk per line or event.
            headers.add(name: "content-type", value: contentType)
            channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers)), promise: nil)
            runSteps(steps[...], request: request, peer: peer, channel: channel, state: state, started: started)
        }
    }

    private static func runSteps(
        _ steps: ArraySlice<OllamaStreamStep>, request: HTTPRequestHead, peer: String, channel: Channel, state: OllamaServerState,
        started: Double
    ) {
        guard let step = steps.first else {
            finish(status: .ok, request: request, peer: peer, channel: channel, state: state, started: started)
            return
        }
        let send: @Sendable () -> Void = {
            // A client that went away ends the pull: nothing is marked pulled.
            guard channel.isActive else { return }
            step.action?()
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: step.chunk))), promise: nil)
            runSteps(steps.dropFirst(), request: request, peer: peer, channel: channel, state: state, started: started)
        }
        if step.delay <= 0 {
            send()
        } else {
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(step.delay * 1e9)), send)
        }
    }

    private static func finish(
        status: HTTPResponseStatus, request: HTTPRequestHead, peer: String, channel: Channel, state: OllamaServerState, started: Double
    ) {
        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        if !request.isKeepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
        state.log.gin(status: Int(status.code), seconds: Clock.now() - started, client: peer, method: request.method.rawValue, path: request.uri)
    }
}
