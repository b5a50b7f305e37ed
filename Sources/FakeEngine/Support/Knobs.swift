#if canImport(Glibc)
    import Glibc
#endif

// Fault knobs, read from the environment (a profile's `env` reaches the engine this way).
// main.swift documents each one.

struct Knobs: Sendable {
    /// Longer than any test waits, and small enough that no conversion of it can trap.
    static let maximumSeconds = 1e9

    var loadSeconds = 0.2
    var exitAtStart: String?
    var crashAfter: Double?
    var crashCode: Int32 = 1
    var crashSignal: Int32?
    var hangAfter: Double?
    var ignoreSigterm = false
    var escapeHelper = false
    var noEngineCore = false
    var pidFile: String?
    /// Seconds between the events of a streamed answer (vLLM mode), as a model generates.
    var tokenSeconds = 0.0
    // Ollama mode.
    var pullSeconds = 0.5
    var pullUnknown: [String] = []
    var pullSplit = false
    var registryUnreachable = false
    var embeddingModels: [String] = []

    /// A knob with a value that cannot be used: the fixture refuses to start (exit 2).
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// A boolean knob: set and not "", "0", "false", "no" or "off".
    static func isOn(_ text: String?) -> Bool {
        guard let text else { return false }
        return !["", "0", "false", "no", "off"].contains(text.lowercased())
    }

    /// The knobs, or a message on stderr and exit 2.
    static func fromEnvironment(_ environment: (String) -> String?) -> Knobs {
        do {
            return try parse(environment)
        } catch {
            Console.err(error.description)
            exit(2)
        }
    }

    static func parse(_ environment: (String) -> String?) throws(Invalid) -> Knobs {
        func text(_ name: String) -> String? { environment(name).flatMap { $0.isEmpty ? nil : $0 } }
        func seconds(_ name: String) throws(Invalid) -> Double? {
            guard let value = text(name) else { return nil }
            guard let number = Double(value), (0...maximumSeconds).contains(number) else {
                throw Invalid(description: "fake-engine: \(name)=\(value): expected a number of seconds from 0 to 1e9")
            }
            return number
        }
        func integer(_ name: String, _ range: ClosedRange<Int32>) throws(Invalid) -> Int32? {
            guard let value = text(name) else { return nil }
            guard let number = Int32(value), range.contains(number) else {
                throw Invalid(
                    description:
                        "fake-engine: \(name)=\(value): expected an integer from \(range.lowerBound) to \(range.upperBound)"
                )
            }
            return number
        }
        func list(_ name: String) -> [String] {
            (text(name) ?? "").split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
        }

        var knobs = Knobs()
        knobs.loadSeconds = try seconds("FAKE_LOAD_SECONDS") ?? knobs.loadSeconds
        knobs.exitAtStart = text("FAKE_EXIT_AT_START")
        knobs.crashAfter = try seconds("FAKE_CRASH_AFTER")
        knobs.crashCode = try integer("FAKE_CRASH_CODE", Int32.min...Int32.max) ?? knobs.crashCode
        knobs.crashSignal = try integer("FAKE_CRASH_SIGNAL", 1...64)
        knobs.hangAfter = try seconds("FAKE_HANG_AFTER")
        knobs.ignoreSigterm = isOn(environment("FAKE_IGNORE_SIGTERM"))
        knobs.escapeHelper = isOn(environment("FAKE_ESCAPE_HELPER"))
        knobs.noEngineCore = isOn(environment("FAKE_NO_ENGINE_CORE"))
        knobs.pidFile = text("FAKE_PID_FILE")
        knobs.tokenSeconds = try seconds("FAKE_TOKEN_SECONDS") ?? knobs.tokenSeconds
        knobs.pullSeconds = try seconds("FAKE_PULL_SECONDS") ?? knobs.pullSeconds
        knobs.pullUnknown = list("FAKE_PULL_UNKNOWN")
        knobs.pullSplit = isOn(environment("FAKE_PULL_SPLIT"))
        knobs.registryUnreachable = isOn(environment("FAKE_REGISTRY_UNREACHABLE"))
        knobs.embeddingModels = list("FAKE_EMBEDDING_MODELS")
        return knobs
    }

    /// FAKE_PID_FILE: "<main> <child> <helper>" (0 when absent), through a temp file and a
    /// rename, so a test polling for the file never reads half of it.
    func writePIDFile(child: pid_t?, helper: pid_t?) {
        guard let path = pidFile else { return }
        let bytes = Array("\(getpid()) \(child ?? 0) \(helper ?? 0)\n".utf8)
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let written = fd < 0 ? -1 : bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if fd >= 0 { close(fd) }
        guard written == bytes.count, rename(temporary, path) == 0 else {
            Console.err("fake-engine: cannot write FAKE_PID_FILE \(path): \(String(cString: strerror(errno)))")
            unlink(temporary)
            return
        }
    }
}
