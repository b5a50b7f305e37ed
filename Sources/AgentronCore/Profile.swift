// A profile describes one server: which engine runs which model, where, and how it is
// supervised. Profiles are data (docs/architecture.md): YAML files on disk (see Profile+YAML.swift),
// or built by `agentron up <hf-id> --engine X` from flags and defaults. The daemon receives
// the resolved profile as JSON over the control API.

/// The engines agentron knows how to drive (docs/engines.md).
public enum EngineKind: String, Codable, Sendable, CaseIterable {
    case vllm
    case ollama
    case tgi
    case command
}

/// A fixed TCP port, or `auto`: the daemon picks a free one before spawning.
public enum PortSpec: Sendable, Equatable, Hashable {
    case fixed(Int)
    case auto

    public static let validRange = 1...65535
}

extension PortSpec: Codable, CustomStringConvertible {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            self = .fixed(number)
        } else if try container.decode(String.self) == "auto" {
            self = .auto
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "port must be a number or \"auto\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .fixed(let port): try container.encode(port)
        case .auto: try container.encode("auto")
        }
    }

    public var description: String {
        switch self {
        case .fixed(let port): "\(port)"
        case .auto: "auto"
        }
    }
}

/// A span of time written as `90s`, `30m`, `1h`, `500ms` in profiles and flags.
/// On the wire it is a number of seconds.
public struct TimeSpan: Sendable, Equatable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var seconds: Double

    public init(seconds: Double) { self.seconds = seconds }
    public static func seconds(_ s: Double) -> TimeSpan { TimeSpan(seconds: s) }
    public static func minutes(_ m: Double) -> TimeSpan { TimeSpan(seconds: m * 60) }
    public static func milliseconds(_ ms: Double) -> TimeSpan { TimeSpan(seconds: ms / 1000) }

    /// Saturating: NaN and negative spans are zero, spans beyond `Int64` milliseconds are
    /// the largest `Duration` that fits (a span read from the wire never traps, issue #10).
    public var duration: Duration { .milliseconds(Self.saturatingInt64(seconds * 1000)) }

    /// Whole milliseconds, clamped to 0...Int64.max (NaN is 0).
    public var milliseconds: Int64 { Self.saturatingInt64(seconds * 1000) }

    static func saturatingInt64(_ value: Double) -> Int64 {
        guard value.isFinite else { return value == .infinity ? .max : 0 }
        guard value > 0 else { return 0 }
        // 2^63 is exactly representable as a Double; anything at or above it saturates.
        guard value < 9_223_372_036_854_775_808.0 else { return .max }
        return Int64(value.rounded())
    }

    public init(from decoder: any Decoder) throws {
        seconds = try decoder.singleValueContainer().decode(Double.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(seconds)
    }

    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.seconds < rhs.seconds }

    /// Parses `500ms`, `90s`, `30m`, `2h`, or a bare number of seconds. Nil when malformed.
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "ms" also ends with "s": only accept the unit whose prefix is a number.
            if let value = Double(number), value >= 0, value.isFinite {
                self.seconds = value * scale
                return
            }
        }
        if let value = Double(trimmed), value >= 0, value.isFinite {
            self.seconds = value
            return
        }
        return nil
    }

    /// The shortest faithful way to write this span back: `90s`, `30m`, `1.5s`, `250ms`.
    public var description: String {
        // Integer conversions below only for spans that fit (a year is the profile limit;
        // anything longer, or not a number, is written as the raw seconds).
        guard seconds.isFinite, seconds >= 0, seconds < 1e15 else { return "\(seconds)s" }
        if seconds >= 3600, seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        if seconds >= 60, seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60))m" }
        if seconds.rounded() == seconds { return "\(Int(seconds))s" }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        return "\(seconds)s"
    }
}

/// When an engine fetches what it serves (an Ollama model, a TGI image), like
/// `docker run --pull`: `missing` (the default) fetches only what is not on this machine,
/// so a model already on disk starts with the registry unreachable; `always` asks the
/// registry on every start; `never` fails with a clear line when it is missing.
public enum PullPolicy: String, Codable, Sendable, CaseIterable {
    case missing
    case always
    case never
}

/// Liveness probing once a server is ready, like a Kubernetes liveness probe.
public struct ProbeSettings: Codable, Sendable, Equatable, Hashable {
    /// Time between two liveness probes.
    public var interval: TimeSpan
    /// How long one probe may take before it counts as failed.
    public var timeout: TimeSpan
    /// Consecutive failed probes after which the engine is restarted.
    public var failureThreshold: Int

    public init(interval: TimeSpan = .seconds(10), timeout: TimeSpan = .seconds(5), failureThreshold: Int = 3) {
        self.interval = interval
        self.timeout = timeout
        self.failureThreshold = failureThreshold
    }
}

public enum RestartMode: String, Codable, Sendable, CaseIterable {
    case always
    case onFailure = "on-failure"
    case never
}

/// When and how fast a server that died is started again (docs/state-machine.md).
public struct RestartPolicy: Codable, Sendable, Equatable, Hashable {
    public var mode: RestartMode
    /// Delay before the first restart; each further one is `factor` times longer, up to `maxDelay`.
    public var initialDelay: TimeSpan
    public var factor: Double
    public var maxDelay: TimeSpan
    /// More than `maxRestarts` restarts within `window` and the server is `failed`.
    public var maxRestarts: Int
    public var window: TimeSpan
    /// A server ready this long has its backoff and restart counter reset.
    public var resetAfter: TimeSpan

    public init(
        mode: RestartMode = .onFailure,
        initialDelay: TimeSpan = .seconds(1),
        factor: Double = 2,
        maxDelay: TimeSpan = .seconds(60),
        maxRestarts: Int = 5,
        window: TimeSpan = .minutes(10),
        resetAfter: TimeSpan = .minutes(5)
    ) {
        self.mode = mode
        self.initialDelay = initialDelay
        self.factor = factor
        self.maxDelay = maxDelay
        self.maxRestarts = maxRestarts
        self.window = window
        self.resetAfter = resetAfter
    }
}

/// One server's full description. Every field has a default except `name`, `engine`, `model`.
public struct Profile: Codable, Sendable, Equatable, Hashable {
    public var name: String
    public var engine: EngineKind
    /// What the engine serves, in its own terms (a Hugging Face id, an Ollama model name, the
    /// name to register): each driver's `modelDescription` says.
    public var model: String
    public var host: String
    public var port: PortSpec
    /// GPU indices the engine may use (CUDA_VISIBLE_DEVICES); empty means the engine's default.
    public var gpus: [Int]
    /// Extra engine arguments, appended after the ones agentron builds.
    public var args: [String]
    public var env: [String: String]
    /// How long the engine may take from spawn to ready (weights download and load).
    public var startupTimeout: TimeSpan
    public var probe: ProbeSettings
    public var restart: RestartPolicy
    /// Grace between SIGTERM and SIGKILL on stop. vLLM and TGI need up to 90 s.
    public var stopTimeout: TimeSpan
    public var autostart: Bool
    /// Whether the ready server is written into the shared provider config (docs/providers.md).
    public var register: Bool
    /// The keys from here on are taken only by some engines (each driver's `profileKeys`).
    /// An argv with `{host}`, `{port}`, `{model}`, `{name}` placeholders.
    public var command: [String]?
    /// The health path and the status that means healthy.
    public var healthPath: String?
    public var healthStatus: Int?
    /// The container image (TGI's; for the command engine, the one `export kubernetes`
    /// runs it in).
    public var image: String?
    /// Where the command's program is inside `image` (`/app/llama-server`), when it is not
    /// the command's first word there.
    public var imageProgram: String?
    /// The engine's program as an absolute path (`/opt/venv/bin/vllm`), instead of the
    /// engine's name looked up on the daemon's PATH. `up` sets it to what the caller's PATH
    /// finds (docs/configuration.md).
    public var executable: String?
    /// Use a server of the engine already answering on the (fixed) port, such as Ollama's
    /// system service, instead of starting one. agentron then prepares, probes and
    /// registers it, but never stops that process. Nil means no.
    public var adopt: Bool?
    /// When to pull what the engine serves (a model, an image). Nil means `missing`.
    public var pull: PullPolicy?
    /// More names the gateway routes to this server besides its name and its `model`
    /// (docs/gateway.md). Nil means none.
    public var aliases: [String]?
    /// Stop the server after this long without a request through the gateway, counted from
    /// the end of the last one and never while one is in flight (docs/gateway.md). Nil:
    /// never.
    public var ttl: TimeSpan?
    /// Profiles with the same group are exclusive: starting one stops the others once the
    /// gateway's requests to them have finished (docs/gateway.md). Nil: no group.
    public var group: String?
    /// Where this profile came from (a file path, or "flags"); informational.
    public var source: String?

    public init(
        name: String,
        engine: EngineKind,
        model: String,
        host: String = Profile.defaultHost,
        port: PortSpec = .auto,
        gpus: [Int] = [],
        args: [String] = [],
        env: [String: String] = [:],
        startupTimeout: TimeSpan = Profile.defaultStartupTimeout,
        probe: ProbeSettings = ProbeSettings(),
        restart: RestartPolicy = RestartPolicy(),
        stopTimeout: TimeSpan = Profile.defaultStopTimeout,
        autostart: Bool = false,
        register: Bool = true,
        command: [String]? = nil,
        healthPath: String? = nil,
        healthStatus: Int? = nil,
        image: String? = nil,
        imageProgram: String? = nil,
        executable: String? = nil,
        adopt: Bool? = nil,
        pull: PullPolicy? = nil,
        aliases: [String]? = nil,
        ttl: TimeSpan? = nil,
        group: String? = nil,
        source: String? = nil
    ) {
        self.name = name
        self.engine = engine
        self.model = model
        self.host = host
        self.port = port
        self.gpus = gpus
        self.args = args
        self.env = env
        self.startupTimeout = startupTimeout
        self.probe = probe
        self.restart = restart
        self.stopTimeout = stopTimeout
        self.autostart = autostart
        self.register = register
        self.command = command
        self.healthPath = healthPath
        self.healthStatus = healthStatus
        self.image = image
        self.imageProgram = imageProgram
        self.executable = executable
        self.adopt = adopt
        self.pull = pull
        self.aliases = aliases
        self.ttl = ttl
        self.group = group
        self.source = source
    }

    /// The gateway's other names for this server (none when `aliases` is nil).
    public var aliasList: [String] { aliases ?? [] }

    /// The pull policy in force: the profile's, or `missing`.
    public var pullPolicy: PullPolicy { pull ?? .missing }

    /// Engines bind to loopback unless a profile says otherwise (vLLM's own default is all interfaces).
    public static let defaultHost = "127.0.0.1"
    /// Long by default: a first start downloads weights, which takes many minutes.
    public static let defaultStartupTimeout = TimeSpan.minutes(30)
    /// vLLM and TGI need up to 90 s to shut down cleanly.
    public static let defaultStopTimeout = TimeSpan.seconds(90)

    /// The server name derived from a model id: `meta-llama/Llama-3.2-1B-Instruct` →
    /// `llama-3.2-1b-instruct`, `llama3.2:1b` → `llama3.2-1b`.
    public static func derivedName(fromModel model: String) -> String {
        var base = model
        if let slash = base.lastIndex(of: "/") { base = String(base[base.index(after: slash)...]) }
        var out = ""
        for ch in base.lowercased() {
            if ch.isLetter || ch.isNumber || ch == "." || ch == "-" || ch == "_" {
                out.append(ch)
            } else if out.last != "-" {
                out.append("-")
            }
        }
        while out.hasPrefix("-") || out.hasPrefix(".") { out.removeFirst() }
        while out.hasSuffix("-") || out.hasSuffix(".") { out.removeLast() }
        return out.isEmpty ? "server" : out
    }

    /// Server names become file names, log names and provider ids: keep them plain.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.first, first.isLetter || first.isNumber, name.count <= 64 else { return false }
        return name.allSatisfy { ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") && $0.isASCII }
    }

    /// The same profile with secrets replaced, for `inspect`, logs and error messages.
    public var redacted: Profile {
        var copy = self
        for key in copy.env.keys where Profile.isSecretKey(key) { copy.env[key] = "<redacted>" }
        copy.args = Profile.redactArguments(copy.args)
        copy.command = copy.command.map(Profile.redactArguments)
        return copy
    }

    /// A variable whose value is a secret: one of its `_`-separated words is TOKEN, KEY,
    /// SECRET, PASSWORD or PASSWD (`HF_TOKEN`, `VLLM_API_KEY`), or it ends in one glued
    /// to the word before (`APIKEY`). `TOKENIZERS_PARALLELISM` and `MAX_TOKENS` are not.
    public static func isSecretKey(_ key: String) -> Bool {
        isSecretName(key.uppercased().split(whereSeparator: { $0 == "_" || $0 == "-" }).map(String.init))
    }

    static let secretWords: Set<String> = [
        "TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "CREDENTIAL", "CREDENTIALS",
    ]

    static func isSecretName(_ words: [String]) -> Bool {
        words.contains { secretWords.contains($0) }
            || (words.last.map { $0.hasSuffix("APIKEY") || $0.hasSuffix("TOKEN") } ?? false)
    }
}

extension String {
    /// Untrusted text for an error message: at most 80 characters, so a 64 KiB name in a
    /// request cannot make a 64 KiB reply or log line.
    public var clippedForMessage: String {
        count > 80 ? String(prefix(80)) + "…" : self
    }

    /// Leading and trailing spaces, tabs and newlines removed (no Foundation needed).
    public var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}
