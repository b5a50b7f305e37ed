import AgentronCore
import AgentronEngines

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// Profiles as YAML files (docs/architecture.md). The reader is strict: unknown keys, duplicate keys
// and wrong types are errors that point at the line, because a typo in a profile otherwise
// shows up minutes later as an engine that will not start.
//
// Typing rules, so the same text always means the same thing:
// - Numbers (port, health_status, failure_threshold, max_restarts, GPU indices) must be
//   plain YAML numbers. A quoted "8080" is refused with a hint to drop the quotes: a quoted
//   value is a string in YAML, and accepting it here but not elsewhere would be a trap.
// - Booleans must be plain: true/false, yes/no, on/off (any of their usual cases).
// - Text fields (name, model, host, image, health_path, args, env values, command) take
//   any non-null scalar verbatim, so `args: [--max-model-len, 8192]` gives "8192".
// - Durations take a bare number of seconds or a string like 90s, 30m, 2h, 500ms.
// - A key with no value (`port:`) is an error, not "use the default": remove the key instead.

/// A profile that could not be read, with where and why, rendered as one line:
/// `path/to/x.yaml:12:3: probe.interval: invalid duration "5x"; write it like 90s, 30m or 500ms`.
public struct ProfileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The profile file; empty when there is none (a name that matched nothing).
    public var file: String
    /// 1-based position; 0 when the error is about the whole file (unreadable) or no file.
    public var line: Int
    public var column: Int
    /// Dotted key path such as `probe.interval` or `args[2]`; empty when not about one key.
    public var field: String
    /// What is wrong and what to do about it.
    public var message: String

    public init(file: String, line: Int = 0, column: Int = 0, field: String = "", message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    public var description: String {
        var out = file
        if line > 0 { out += (out.isEmpty ? "" : ":") + "\(line):\(column)" }
        if !out.isEmpty { out += ": " }
        if !field.isEmpty { out += field + ": " }
        return out + message
    }
}

extension Profile {
    /// The keys a profile file may contain, in the order `yamlText` writes them.
    public static let yamlKeys = [
        "name", "engine", "model", "host", "port", "gpus", "args", "env", "startup_timeout", "stop_timeout",
        "probe", "restart", "autostart", "register", "command", "health_path", "health_status", "image",
        "image_program",
        "executable", "adopt",
        "pull", "aliases", "ttl", "group",
    ]
    public static let yamlProbeKeys = ["interval", "timeout", "failure_threshold"]
    public static let yamlRestartKeys = [
        "policy", "initial_delay", "factor", "max_delay", "max_restarts", "window", "reset_after",
    ]

    /// Durations longer than this are refused: no timeout in a profile means a year, and
    /// capping keeps every later conversion (to `Duration`, to integers) in range.
    public static var maxYAMLDuration: TimeSpan { Limits.maxDuration }

    /// Parses one profile. `file` is used for error positions and, when the YAML has no
    /// `name:`, for the name (its base name without `.yaml`/`.yml`).
    public static func parse(yaml: String, file: String) throws(ProfileError) -> Profile {
        let root: YAMLNode
        do throws(YAMLError) {
            root = try YAMLNode.load(yaml)
        } catch {
            throw ProfileReader(file: file).yamlError(error)
        }
        var profile = try ProfileReader(file: file).profile(from: root)
        profile.source = file
        return profile
    }

    /// Reads and parses a profile file. An unreadable file is a `ProfileError` too.
    public static func load(path: String) throws(ProfileError) -> Profile {
        try parse(yaml: try readProfileText(path: path), file: path)
    }

    /// Profile files are small; a bigger one is a mistake (a model file named .yaml?).
    static let maxProfileFileBytes = 1 << 20

    static func readProfileText(path: String) throws(ProfileError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ProfileError(
                file: path, message: "cannot read the profile: \(errnoText()); check the path and its permissions")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ProfileError(
                    file: path, message: "cannot read the profile: \(errnoText()); check the path and its permissions")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            guard bytes.count <= maxProfileFileBytes else {
                throw ProfileError(
                    file: path,
                    message: "the file is larger than \(maxProfileFileBytes / 1024) KiB; is it really a profile?")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ProfileError(file: path, message: "the file is not valid UTF-8; save it as UTF-8 text")
        }
        return text
    }

    /// The file's base name without `.yaml`/`.yml`: `/etc/x/llama.yaml` → `llama`.
    static func baseName(ofProfileFile file: String) -> String {
        var base = Substring(file)
        if let slash = base.lastIndex(of: "/") { base = base[base.index(after: slash)...] }
        for suffix in [".yaml", ".yml"] where base.hasSuffix(suffix) {
            return String(base.dropLast(suffix.count))
        }
        return String(base)
    }
}

private func errnoText() -> String {
    String(cString: strerror(errno))
}

/// Walks a loaded YAML tree into a `Profile`, producing errors with positions.
struct ProfileReader {
    let file: String

    func fail(_ node: YAMLNode, _ field: String, _ message: String) -> ProfileError {
        ProfileError(file: file, line: node.line, column: node.column, field: field, message: message)
    }

    func yamlError(_ error: YAMLError) -> ProfileError {
        let message: String
        switch error.reason {
        case .empty:
            message =
                "the file is empty; a profile needs at least engine: and model: (e.g. engine: vllm, model: Qwen/Qwen2.5-1.5B-Instruct)"
        case .syntax:
            message =
                "invalid YAML: \(error.message); check the indentation and quote values that contain \": \" or \" #\""
        default:
            message = error.message
        }
        return ProfileError(file: file, line: error.line, column: error.column, message: message)
    }

    // MARK: The profile

    func profile(from root: YAMLNode) throws(ProfileError) -> Profile {
        guard case .mapping = root.content else {
            throw fail(
                root, "",
                "expected a mapping of profile keys, found \(root.kindDescription); start with lines like engine: vllm and model: <model id>"
            )
        }
        let top = try mapping(root, path: "", allowed: Profile.yamlKeys)

        guard let engineNode = top["engine"] else {
            throw fail(
                root, "engine",
                "required key is missing; add engine: followed by one of \(Self.list(EngineKind.allCases.map(\.rawValue)))"
            )
        }
        let engine = try choice(engineNode, "engine", EngineKind.self, what: "engine")
        let driver = engine.driver
        guard let modelNode = top["model"] else {
            throw fail(root, "model", "required key is missing; add model: with \(driver.modelHint)")
        }
        let model = try text(modelNode, "model", hint: "write it like model: \(driver.modelExample)")

        let name: String
        if let node = top["name"] {
            name = try text(node, "name", hint: "write it like name: my-server")
            guard Profile.isValidName(name) else {
                throw fail(node, "name", "invalid server name \(YAMLNode.quoteForMessage(name)); \(Self.nameRule)")
            }
        } else {
            name = Profile.baseName(ofProfileFile: file)
            guard Profile.isValidName(name) else {
                let why =
                    name.isEmpty
                    ? "there is no file name to take it from"
                    : "the file name \(YAMLNode.quoteForMessage(name)) is not a valid server name"
                throw fail(root, "name", "no name: key and \(why); add name: my-server (\(Self.nameRule))")
            }
        }

        var profile = Profile(name: name, engine: engine, model: model)
        if let node = top["host"] {
            profile.host = try text(node, "host", hint: "write it like host: 127.0.0.1")
            guard !profile.host.isEmpty, !profile.host.contains(where: { $0 == " " || $0 == "/" }) else {
                throw fail(
                    node, "host",
                    "invalid host \(YAMLNode.quoteForMessage(profile.host)); write an address like 127.0.0.1 or 0.0.0.0"
                )
            }
        }
        if let node = top["port"] { profile.port = try port(node) }
        if let node = top["gpus"] { profile.gpus = try gpus(node) }
        if let node = top["args"] {
            profile.args = try textList(node, "args", hint: "write it as a list: args: [--max-model-len, 8192]")
        }
        if let node = top["env"] { profile.env = try environment(node) }
        if let node = top["startup_timeout"] { profile.startupTimeout = try duration(node, "startup_timeout") }
        if let node = top["stop_timeout"] { profile.stopTimeout = try duration(node, "stop_timeout", allowZero: true) }
        if let node = top["probe"] { profile.probe = try probe(node) }
        if let node = top["restart"] { profile.restart = try restart(node) }
        if let node = top["autostart"] { profile.autostart = try boolean(node, "autostart") }
        if let node = top["register"] { profile.register = try boolean(node, "register") }
        if let node = top["aliases"] {
            let aliases = try textList(node, "aliases", hint: "write it as a list: aliases: [llama-8b, llama]")
            profile.aliases = aliases.isEmpty ? nil : aliases
        }
        if let node = top["ttl"] { profile.ttl = try duration(node, "ttl") }
        if let node = top["group"] {
            let group = try text(node, "group", hint: "write it like group: big-gpu")
            guard Profile.isValidName(group) else {
                throw fail(node, "group", "invalid group \(YAMLNode.quoteForMessage(group)); \(Self.nameRule)")
            }
            profile.group = group
        }
        // The keys only some engines take are refused at the key, before their value is
        // read, for any other engine.
        for key in EngineProfileKey.allCases {
            if let node = top[key.rawValue], let refusal = Engines.refusal(of: key, for: engine) {
                throw fail(top.keyNode(key.rawValue) ?? node, key.rawValue, refusal)
            }
        }
        if let node = top["adopt"] {
            profile.adopt = try boolean(node, "adopt") ? true : nil
        }
        if let node = top["pull"] {
            profile.pull = try choice(node, "pull", PullPolicy.self, what: "pull policy")
        }
        if let node = top["command"] {
            profile.command = try textList(
                node, "command", hint: "write it as a list: command: [llama-server, --port, \"{port}\"]")
        }
        if let node = top["health_path"] {
            let path = try text(node, "health_path", hint: "write it like health_path: /health")
            guard path.hasPrefix("/"), !path.contains(" ") else {
                throw fail(
                    node, "health_path",
                    "invalid path \(YAMLNode.quoteForMessage(path)); write an HTTP path starting with /, like /health")
            }
            profile.healthPath = path
        }
        if let node = top["health_status"] {
            let status = try integer(node, "health_status")
            guard (100...599).contains(status) else {
                throw fail(
                    node, "health_status", "\(status) is not an HTTP status; use a number from 100 to 599, usually 200")
            }
            profile.healthStatus = status
        }
        if let node = top["executable"] {
            profile.executable = try text(node, "executable", hint: "write it like executable: /opt/vllm/bin/vllm")
        }
        if let node = top["image"] {
            profile.image = try text(
                node, "image", hint: "write it like image: ghcr.io/huggingface/text-generation-inference:3.3.5")
            guard profile.image?.isEmpty == false else {
                throw fail(
                    node, "image",
                    "the image name is empty; write it like image: ghcr.io/huggingface/text-generation-inference:3.3.5")
            }
        }
        if let node = top["image_program"] {
            profile.imageProgram = try text(
                node, "image_program", hint: "write it like image_program: /app/llama-server")
        }

        if model.isEmpty {
            throw fail(modelNode, "model", "the model is empty; write it like model: \(driver.modelExample)")
        }
        // The limits the daemon applies to every profile (sizes, counts, ranges): reported
        // here with the position of the key they are about.
        do throws(ProfileProblem) {
            try profile.validate()
        } catch {
            let key = String(error.field.prefix { $0 != "." && $0 != "[" })
            throw fail(top[key] ?? root, error.field, error.message)
        }
        // The engine's own rules (its driver's), at the key they are about, or at `engine:`
        // when that key is missing (a `command` engine without `command:`).
        do throws(ProfileProblem) {
            try driver.validate(profile)
        } catch {
            let key = String(error.field.prefix { $0 != "." && $0 != "[" })
            throw fail(top[key] ?? engineNode, error.field, error.message)
        }
        return profile
    }

    func probe(_ node: YAMLNode) throws(ProfileError) -> ProbeSettings {
        let fields = try mapping(node, path: "probe", allowed: Profile.yamlProbeKeys)
        var probe = ProbeSettings()
        if let value = fields["interval"] { probe.interval = try duration(value, "probe.interval") }
        if let value = fields["timeout"] { probe.timeout = try duration(value, "probe.timeout") }
        if let value = fields["failure_threshold"] {
            probe.failureThreshold = try integer(value, "probe.failure_threshold")
            guard probe.failureThreshold >= 1 else {
                throw fail(value, "probe.failure_threshold", "must be at least 1; write it like failure_threshold: 3")
            }
        }
        return probe
    }

    func restart(_ node: YAMLNode) throws(ProfileError) -> RestartPolicy {
        let fields = try mapping(node, path: "restart", allowed: Profile.yamlRestartKeys)
        var policy = RestartPolicy()
        if let value = fields["policy"] {
            policy.mode = try choice(value, "restart.policy", RestartMode.self, what: "restart policy")
        }
        if let value = fields["initial_delay"] {
            policy.initialDelay = try duration(value, "restart.initial_delay", allowZero: true)
        }
        if let value = fields["factor"] {
            policy.factor = try number(value, "restart.factor")
            guard (1...100).contains(policy.factor) else {
                throw fail(
                    value, "restart.factor",
                    "must be from 1 to 100 (each delay is the previous one times factor); write it like factor: 2")
            }
        }
        if let value = fields["max_delay"] {
            policy.maxDelay = try duration(value, "restart.max_delay", allowZero: true)
        }
        if let value = fields["max_restarts"] {
            policy.maxRestarts = try integer(value, "restart.max_restarts")
            guard policy.maxRestarts >= 0 else {
                throw fail(value, "restart.max_restarts", "must be 0 or more; write it like max_restarts: 5")
            }
        }
        if let value = fields["window"] { policy.window = try duration(value, "restart.window") }
        if let value = fields["reset_after"] { policy.resetAfter = try duration(value, "restart.reset_after") }
        if policy.maxDelay < policy.initialDelay, let value = fields["max_delay"] ?? fields["initial_delay"] {
            let field = fields["max_delay"] == nil ? "restart.initial_delay" : "restart.max_delay"
            throw fail(
                value, field,
                "max_delay (\(policy.maxDelay)) is shorter than initial_delay (\(policy.initialDelay)); make max_delay at least initial_delay"
            )
        }
        return policy
    }
}
