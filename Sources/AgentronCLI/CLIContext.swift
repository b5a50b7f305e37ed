import AgentronClient
import AgentronConfig
import AgentronCore
import ArgumentParser
import FoundationEssentials
import Glibc

/// What every command needs: where the daemon is, and how to print.
struct CLIContext {
    let paths: AgentronPaths
    /// The daemon this command talks to (DaemonTarget: --host, own, or the system's).
    let target: DaemonTarget
    var client: ControlClient { ControlClient(target: target) }

    init() {
        paths = AgentronPaths.current()
        // --host was checked before parsing (AgentronCommand.runAsync): this cannot fail.
        target =
            (try? DaemonTarget.choose(paths: paths, environment: ProcessEnvironment.current))
            ?? .own(paths)
    }

    var catalog: ProfileCatalog { ProfileCatalog(paths: paths) }
}

/// Diagnostics go to stderr, results to stdout (docs/conventions.md rule 5).
enum Output {
    static func error(_ message: String) {
        writeStderr("error: \(message)\n")
    }

    static func note(_ message: String) {
        writeStderr("\(message)\n")
    }

    static func writeStderr(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    static func writeStdout(_ bytes: [UInt8]) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes {
                write(STDOUT_FILENO, $0.baseAddress.map { $0 + written }, bytes.count - written)
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            written += n
        }
    }

    static func json<T: Encodable>(_ value: T) {
        guard let bytes = jsonBytes(value) else { return }
        writeStdout(bytes)
    }

    /// What `--json` prints: pretty, keys sorted, slashes as they are, a final newline.
    static func jsonBytes<T: Encodable>(_ value: T) -> [UInt8]? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return nil }
        return Array(data) + [UInt8(ascii: "\n")]
    }

    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }
    static var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
    /// Colour only on a TTY and never with NO_COLOR set (https://no-color.org).
    static var useColor: Bool { stdoutIsTTY && ProcessEnvironment.current["NO_COLOR"].map(\.isEmpty) ?? true }
}

/// Ends a command with one clear line on stderr and a non-zero exit.
func fail(_ message: String, code: Int32 = ExitStatus.failure) -> ExitCode {
    Output.error(message)
    return ExitCode(code)
}

/// Ends a command with the error's one line and the exit status its kind has.
func fail(_ error: any Error) -> ExitCode {
    fail("\(error)", code: ExitStatus.of(error))
}

/// The CLI's exit statuses, stable across releases (docs/cli.md, "Exit status"): scripts
/// may tell "no such server" from "the daemon is not running" from "the engine failed".
enum ExitStatus {
    static let success: Int32 = 0
    /// Anything not listed below.
    static let failure: Int32 = 1
    /// No such server, profile or model.
    static let notFound: Int32 = 2
    /// The daemon is not running, does not answer, or may not be used (socket, peer check).
    static let daemonUnreachable: Int32 = 3
    /// The server could not start (the engine failed, its port is taken, it is missing).
    static let startFailed: Int32 = 4
    /// A wait ran out (`up --timeout`, a daemon that accepted but never answered).
    static let timeout: Int32 = 5
    /// Bad usage: an unknown flag, a bad value (ArgumentParser's own code, EX_USAGE).
    static let usage: Int32 = 64

    static func of(_ error: any Error) -> Int32 {
        switch error as? ClientError {
        case .daemonNotRunning, .notAllowed, .untrustedDaemon, .unsafeRuntimeDirectory, .transport: daemonUnreachable
        case .daemonNotAnswering: timeout
        case .api(let api):
            switch api.code {
            case .notFound: notFound
            case .startFailed, .portInUse, .engineNotFound: startFailed
            case .invalidRequest: usage
            default: failure
            }
        case .badResponse, nil: failure
        }
    }
}

/// Argument transforms for the Core value types.
enum Parse {
    static func timeSpan(_ text: String) throws -> TimeSpan {
        guard let span = TimeSpan(parsing: text) else {
            throw ValidationError("invalid duration \"\(text)\"; write it like 90s, 30m, 2h or 500ms")
        }
        guard span <= Profile.Limits.maxDuration else {
            throw ValidationError("duration \"\(text)\" is longer than a year; write it like 90s, 30m, 2h or 500ms")
        }
        return span
    }

    static func port(_ text: String) throws -> PortSpec {
        if text == "auto" { return .auto }
        guard let port = Int(text), PortSpec.validRange.contains(port) else {
            throw ValidationError("invalid port \"\(text)\"; give a number from 1 to 65535, or auto")
        }
        return .fixed(port)
    }

    static func gpus(_ text: String) throws -> [Int] {
        var result: [Int] = []
        for part in text.split(separator: ",") {
            guard let index = Int(part.trimmingCharacters(in: " ")), index >= 0 else {
                throw ValidationError("invalid --gpus \"\(text)\"; give GPU indices like 0 or 0,1")
            }
            result.append(index)
        }
        return result
    }

    /// `KEY=VALUE`, or `KEY` alone for the value `environment` has (docker's `-e KEY`):
    /// a token passed that way is in neither argv nor the shell's history.
    static func envPair(_ text: String, environment: [String: String]) throws -> (String, String) {
        guard let eq = text.firstIndex(of: "=") else {
            guard Profile.isEnvironmentName(text) else {
                throw ValidationError(
                    "invalid --env \"\(text)\"; write it as KEY=VALUE, or KEY alone to pass your own value")
            }
            guard let value = environment[text] else {
                throw ValidationError(
                    "--env \(text): \(text) is not set in your environment; export it first, or write --env \(text)=VALUE"
                )
            }
            return (text, value)
        }
        guard eq != text.startIndex else {
            throw ValidationError("invalid --env \"\(text)\"; write it as KEY=VALUE")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
