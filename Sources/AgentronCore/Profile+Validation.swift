// The limits every profile must meet, wherever it comes from: a YAML file (the reader adds
// file:line:column), flags, or a JSON body sent to the daemon by any client (issue #10).
// The daemon applies them itself: the CLI is one client among many, and a profile that
// passes here can be converted to durations, integers and argv without trapping.

/// One thing wrong with a profile: the dotted field (`probe.interval`, `args[3]`) and what
/// to do about it.
public struct ProfileProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}

extension Profile {
    /// Bounds on sizes and counts: generous for any real profile, small enough that one
    /// request cannot make the daemon allocate or write without limit.
    public enum Limits {
        public static let maxTextBytes = 4096
        public static let maxArgumentBytes = 64 * 1024
        public static let maxArguments = 1024
        public static let maxEnvironment = 1024
        public static let maxGPUs = 64
        public static let maxAliases = 64
        public static let maxGPUIndex = 1023
        public static let maxFailureThreshold = 10_000
        public static let maxRestarts = 10_000
        public static let factorRange = 1.0...100.0
        /// No duration in a profile may exceed a year: every later conversion (to
        /// `Duration`, to milliseconds, to systemd's microseconds) stays in range.
        public static let maxDuration = TimeSpan(seconds: 365 * 24 * 3600)
    }

    /// The first problem found, or nil when the profile is within every limit.
    public var validationProblem: ProfileProblem? {
        do {
            try validate()
            return nil
        } catch {
            return error
        }
    }

    /// Checks every field against the limits above (the YAML reader reports the same
    /// problems with a file position). The rules of the profile's engine come on top:
    /// `Engines.validate` applies both.
    public func validate() throws(ProfileProblem) {
        func problem(_ field: String, _ message: String) -> ProfileProblem {
            ProfileProblem(field: field, message: message)
        }

        guard Profile.isValidName(name) else {
            throw problem(
                "name",
                "invalid server name \"\(name.clippedForMessage)\"; use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters"
            )
        }
        try Self.checkText(model, "model", allowEmpty: false)
        try Self.checkText(host, "host", allowEmpty: false)
        guard !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw problem(
                "host", "invalid host \"\(host.clippedForMessage)\"; write an address like 127.0.0.1 or 0.0.0.0")
        }
        if case .fixed(let port) = port, !PortSpec.validRange.contains(port) {
            throw problem("port", "port \(port) is out of range; use a number from 1 to 65535, or auto")
        }
        guard gpus.count <= Limits.maxGPUs else { throw problem("gpus", "more than \(Limits.maxGPUs) GPUs listed") }
        var seen: Set<Int> = []
        for (index, gpu) in gpus.enumerated() {
            guard (0...Limits.maxGPUIndex).contains(gpu) else {
                throw problem(
                    "gpus[\(index)]", "GPU index \(gpu) is out of range; use the indices nvidia-smi shows (0, 1, ...)")
            }
            guard seen.insert(gpu).inserted else {
                throw problem("gpus[\(index)]", "GPU \(gpu) is listed twice; list each GPU once")
            }
        }
        try Self.checkList(args, "args")
        guard env.count <= Limits.maxEnvironment else {
            throw problem("env", "more than \(Limits.maxEnvironment) variables")
        }
        for (key, value) in env {
            guard Self.isEnvironmentName(key) else {
                throw problem(
                    "env.\(key.clippedForMessage)",
                    "invalid variable name; use letters, digits and _, not starting with a digit")
            }
            guard value.utf8.count <= Limits.maxArgumentBytes, !value.utf8.contains(0) else {
                throw problem(
                    "env.\(key)",
                    "the value is longer than \(Limits.maxArgumentBytes / 1024) KiB or contains a NUL byte")
            }
        }
        try Self.checkDuration(startupTimeout, "startup_timeout")
        try Self.checkDuration(stopTimeout, "stop_timeout", allowZero: true)
        try Self.checkDuration(probe.interval, "probe.interval")
        try Self.checkDuration(probe.timeout, "probe.timeout")
        guard (1...Limits.maxFailureThreshold).contains(probe.failureThreshold) else {
            throw problem(
                "probe.failure_threshold",
                "\(probe.failureThreshold) is out of range; use 1 to \(Limits.maxFailureThreshold), like failure_threshold: 3"
            )
        }
        try Self.checkDuration(restart.initialDelay, "restart.initial_delay", allowZero: true)
        try Self.checkDuration(restart.maxDelay, "restart.max_delay", allowZero: true)
        try Self.checkDuration(restart.window, "restart.window")
        try Self.checkDuration(restart.resetAfter, "restart.reset_after")
        guard restart.factor.isFinite, Limits.factorRange.contains(restart.factor) else {
            throw problem(
                "restart.factor",
                "must be from 1 to 100 (each delay is the previous one times factor); write it like factor: 2")
        }
        guard (0...Limits.maxRestarts).contains(restart.maxRestarts) else {
            throw problem(
                "restart.max_restarts",
                "\(restart.maxRestarts) is out of range; use 0 to \(Limits.maxRestarts), like max_restarts: 5")
        }
        guard restart.maxDelay >= restart.initialDelay else {
            throw problem(
                "restart.max_delay",
                "max_delay (\(restart.maxDelay)) is shorter than initial_delay (\(restart.initialDelay)); make max_delay at least initial_delay"
            )
        }
        // What only some engines take (command, health_path, image, adopt, pull...) and each
        // engine's own rules are its driver's to check (Engines.validate); here only the
        // limits on the values themselves.
        if let command { try Self.checkList(command, "command") }
        if let healthPath {
            try Self.checkText(healthPath, "health_path", allowEmpty: false)
            guard healthPath.hasPrefix("/"), !healthPath.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" })
            else {
                throw problem(
                    "health_path",
                    "invalid path \"\(healthPath.clippedForMessage)\"; write an HTTP path starting with /, like /health"
                )
            }
        }
        if let healthStatus {
            guard (100...599).contains(healthStatus) else {
                throw problem(
                    "health_status", "\(healthStatus) is not an HTTP status; use a number from 100 to 599, usually 200")
            }
        }
        if let image { try Self.checkText(image, "image", allowEmpty: false) }
        if let imageProgram { try Self.checkText(imageProgram, "image_program", allowEmpty: false) }
        if let executable {
            try Self.checkText(executable, "executable", allowEmpty: false)
            guard executable.hasPrefix("/") else {
                throw problem(
                    "executable",
                    "\"\(executable.clippedForMessage)\" is not an absolute path; write it like executable: /opt/vllm/bin/vllm"
                )
            }
        }
        if let aliases {
            guard aliases.count <= Limits.maxAliases else {
                throw problem("aliases", "more than \(Limits.maxAliases) aliases")
            }
            var seenAliases: Set<String> = []
            for (index, alias) in aliases.enumerated() {
                guard Self.isValidAlias(alias) else {
                    throw problem(
                        "aliases[\(index)]",
                        "invalid alias \"\(alias.clippedForMessage)\"; write a model name as clients send it, like llama-8b or meta-llama/Llama-3.1-8B-Instruct (no spaces, at most 256 bytes)"
                    )
                }
                guard seenAliases.insert(alias).inserted else {
                    throw problem(
                        "aliases[\(index)]", "\"\(alias.clippedForMessage)\" is listed twice; list each alias once")
                }
            }
        }
        if let ttl { try Self.checkDuration(ttl, "ttl") }
        if let group, !Profile.isValidName(group) {
            throw problem(
                "group",
                "invalid group \"\(group.clippedForMessage)\"; use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters"
            )
        }
        if let source { try Self.checkText(source, "source", allowEmpty: true) }
    }

    /// A name a client may send as `model`: printable ASCII without spaces or quotes, 1 to
    /// 256 bytes (Hugging Face ids, Ollama tags and plain names all fit).
    public static func isValidAlias(_ alias: String) -> Bool {
        !alias.isEmpty && alias.utf8.count <= 256
            && alias.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    private static func checkText(_ text: String, _ field: String, allowEmpty: Bool) throws(ProfileProblem) {
        guard allowEmpty || !text.isEmpty else { throw ProfileProblem(field: field, message: "is empty") }
        guard text.utf8.count <= Limits.maxTextBytes else {
            throw ProfileProblem(field: field, message: "is longer than \(Limits.maxTextBytes) bytes")
        }
        guard !text.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) else {
            throw ProfileProblem(field: field, message: "contains a NUL byte or a line break")
        }
    }

    private static func checkList(_ items: [String], _ field: String) throws(ProfileProblem) {
        guard items.count <= Limits.maxArguments else {
            throw ProfileProblem(field: field, message: "more than \(Limits.maxArguments) items")
        }
        for (index, item) in items.enumerated() {
            guard item.utf8.count <= Limits.maxArgumentBytes, !item.utf8.contains(0) else {
                throw ProfileProblem(
                    field: "\(field)[\(index)]",
                    message: "is longer than \(Limits.maxArgumentBytes / 1024) KiB or contains a NUL byte")
            }
        }
    }

    private static func checkDuration(_ span: TimeSpan, _ field: String, allowZero: Bool = false) throws(ProfileProblem)
    {
        guard span.seconds.isFinite, span.seconds >= 0 else {
            throw ProfileProblem(
                field: field, message: "\(span.seconds) is not a duration; write it like 90s, 30m or 500ms")
        }
        guard span <= Limits.maxDuration else {
            throw ProfileProblem(
                field: field, message: "\(span) is longer than a year; write it like 90s, 30m or 500ms")
        }
        guard allowZero || span.seconds > 0 else {
            throw ProfileProblem(field: field, message: "must be longer than 0; write it like 10s")
        }
    }

    /// Letters, digits and `_`, not starting with a digit: what a shell accepts.
    public static func isEnvironmentName(_ key: String) -> Bool {
        guard let first = key.utf8.first, !(48...57).contains(first), key.utf8.count <= 256 else { return false }
        return key.utf8.allSatisfy {
            ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95
        }
    }
}
