#if canImport(Glibc)
import Glibc
#endif

// Fault knobs, read from the environment (a profile's `env` reaches the engine this way).
// main.swift documents each one; this file parses them and performs the faults that are
// not part of the HTTP layer.

struct FaultKnobs: Equatable, Sendable {
    /// FAKE_LOAD_SECONDS: start → listening ("loading weights"); connections are refused until then.
    var loadSeconds = 0.2
    /// FAKE_EXIT_AT_START: `bad-model` → vLLM's unknown-model traceback; other text → printed; exit 1.
    var exitAtStart: String?
    /// FAKE_CRASH_AFTER: seconds after listening, die with FAKE_CRASH_CODE or FAKE_CRASH_SIGNAL.
    var crashAfter: Double?
    var crashCode: Int32 = 1
    var crashSignal: Int32?
    /// FAKE_HANG_AFTER: seconds after listening, stop answering (connections still accepted).
    var hangAfter: Double?
    /// FAKE_IGNORE_SIGTERM=1: log SIGTERM/SIGINT and keep running (the EngineCore ignores
    /// SIGTERM too, so a group SIGTERM leaves the whole engine up).
    var ignoreSigterm = false
    /// FAKE_ESCAPE_HELPER=1: spawn a helper that setsid()s away and idles forever.
    var escapeHelper = false
    /// FAKE_NO_ENGINE_CORE=1: no VLLM::EngineCore child.
    var noEngineCore = false
    /// FAKE_ENGINECORE_HOLDS_PORT=1: the EngineCore inherits the API socket, as a forked
    /// EngineCore does; after the API server is SIGKILLed the port stays taken by the orphan.
    var engineCoreHoldsPort = false
    /// FAKE_PID_FILE: "<main> <enginecore> <helper>" written once the children exist.
    var pidFile: String?

    /// A knob with a value that cannot be used; the fixture refuses to start (exit 2).
    struct InvalidKnob: Error, CustomStringConvertible {
        var name: String
        var value: String
        var expected: String
        var description: String { "fake-engine: \(name)=\(value): expected \(expected)" }
    }

    /// A boolean knob: set and not "", "0", "false", "no" or "off".
    static func isOn(_ text: String?) -> Bool {
        guard let text else { return false }
        return !["", "0", "false", "no", "off"].contains(text.lowercased())
    }

    static func fromEnvironment(_ environment: (String) -> String?) throws(InvalidKnob) -> FaultKnobs {
        func nonEmpty(_ name: String) -> String? {
            guard let value = environment(name), !value.isEmpty else { return nil }
            return value
        }
        func seconds(_ name: String) throws(InvalidKnob) -> Double? {
            guard let text = nonEmpty(name) else { return nil }
            guard let value = Double(text), value >= 0, value.isFinite else {
                throw InvalidKnob(name: name, value: text, expected: "a number of seconds >= 0")
            }
            return value
        }
        func integer(_ name: String) throws(InvalidKnob) -> Int32? {
            guard let text = nonEmpty(name) else { return nil }
            guard let value = Int32(text) else { throw InvalidKnob(name: name, value: text, expected: "an integer") }
            return value
        }
        func flag(_ name: String) -> Bool { isOn(environment(name)) }

        var knobs = FaultKnobs()
        knobs.loadSeconds = try seconds("FAKE_LOAD_SECONDS") ?? knobs.loadSeconds
        knobs.exitAtStart = nonEmpty("FAKE_EXIT_AT_START")
        knobs.crashAfter = try seconds("FAKE_CRASH_AFTER")
        knobs.crashCode = try integer("FAKE_CRASH_CODE") ?? knobs.crashCode
        if let signal = try integer("FAKE_CRASH_SIGNAL") {
            guard (1..<65).contains(signal) else {
                throw InvalidKnob(name: "FAKE_CRASH_SIGNAL", value: String(signal), expected: "a signal number 1-64")
            }
            knobs.crashSignal = signal
        }
        knobs.hangAfter = try seconds("FAKE_HANG_AFTER")
        knobs.ignoreSigterm = flag("FAKE_IGNORE_SIGTERM")
        knobs.escapeHelper = flag("FAKE_ESCAPE_HELPER")
        knobs.noEngineCore = flag("FAKE_NO_ENGINE_CORE")
        knobs.engineCoreHoldsPort = flag("FAKE_ENGINECORE_HOLDS_PORT")
        knobs.pidFile = nonEmpty("FAKE_PID_FILE")
        return knobs
    }
}

enum Faults {
    /// Writes "<main> <enginecore> <helper>" (0 when absent) via a temp file and rename,
    /// so a test polling for the file never reads half of it.
    static func writePIDFile(_ path: String, main: pid_t, engineCore: pid_t?, helper: pid_t?) {
        let line = "\(main) \(engineCore ?? 0) \(helper ?? 0)\n"
        let temporary = path + ".tmp.\(main)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            Console.err("fake-engine: cannot write FAKE_PID_FILE \(temporary): \(String(cString: strerror(errno)))")
            return
        }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            Console.err("fake-engine: cannot write FAKE_PID_FILE \(path): \(String(cString: strerror(errno)))")
            unlink(temporary)
            return
        }
    }

    /// Dies with `signal` now: restores its default action and unblocks it first, because the
    /// API server blocks the signals it waits for.
    static func killSelf(with signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        kill(getpid(), signal)
        // SIGSTOP and friends return here; a fault knob asked for death, so make sure of it.
        _exit(128 + signal)
    }
}
