import Foundation
import Testing

/// Runs the real `agentrond` and `agentron` binaries from this build against the
/// FakeEngine (installed on PATH as `vllm`), in a private AGENTRON_HOME. Everything it
/// starts is stopped by pid in `shutdown()`, which tests call from a `defer`.
final class Harness: @unchecked Sendable {
    let home: URL
    let fakeBin: URL
    let binDirectory: URL
    var daemon: Process?
    /// The `agentron` that `run` runs (default: this build's).
    var cli: URL?
    /// Pids a test learned of (engine pid files), killed at shutdown if still alive.
    private var extraPids: Set<Int32> = []
    let lock = NSLock()

    /// The build's products sit next to the test bundle (`.build/<triple>/debug/`).
    static var productsDirectory: URL {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // swift test runs `<products>/agentronPackageTests.xctest`.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("agentrond").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }

    init(withFakeVLLM: Bool = true) throws {
        home = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "agentron-test-\(UUID().uuidString.prefix(8))")
        fakeBin = home.appendingPathComponent("bin")
        binDirectory = Self.productsDirectory
        try FileManager.default.createDirectory(at: fakeBin, withIntermediateDirectories: true)
        let fake = binDirectory.appendingPathComponent("fake-engine")
        guard FileManager.default.isExecutableFile(atPath: fake.path),
            FileManager.default.isExecutableFile(atPath: binDirectory.appendingPathComponent("agentrond").path)
        else {
            throw HarnessError("build the products first: `swift build` (looked in \(binDirectory.path))")
        }
        if withFakeVLLM {
            try FileManager.default.createSymbolicLink(
                at: fakeBin.appendingPathComponent("vllm"), withDestinationURL: fake)
        }
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["AGENTRON_HOME"] = home.path
        env["PATH"] = fakeBin.path + ":/usr/local/bin:/usr/bin:/bin"
        env["NO_COLOR"] = "1"
        // Daemons of tests side by side must not fight over the gateway's port; the gateway
        // tests give theirs one.
        env["AGENTRON_GATEWAY"] = "off"
        env.removeValue(forKey: "NOTIFY_SOCKET")
        return env
    }

    /// A loopback port nothing listens on now.
    static func freePort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        guard
            withUnsafePointer(
                to: &address,
                {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }) == 0
        else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    var socketPath: String { home.appendingPathComponent("run/agentron.sock").path }
    var logDirectory: URL { home.appendingPathComponent("state/logs") }

    /// Starts agentrond and waits until its socket answers. `unsetting` removes variables
    /// the test process has (HOME: the system unit sets none).
    @discardableResult
    func startDaemon(
        environment overrides: [String: String] = [:], unsetting: [String] = [], executable: URL? = nil
    ) async throws -> Process {
        let process = Process()
        process.executableURL = executable ?? binDirectory.appendingPathComponent("agentrond")
        var daemonEnvironment = environment.merging(overrides) { $1 }
        for name in unsetting { daemonEnvironment.removeValue(forKey: name) }
        process.environment = daemonEnvironment
        let log = home.appendingPathComponent("agentrond.test.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        daemon = process
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if isListening() { return process }
            guard process.isRunning else { throw HarnessError("agentrond exited at start: \(daemonLog)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("agentrond did not answer within 15 s: \(daemonLog)")
    }

    /// Whether the socket accepts connections (the CLI's `ps` answers even without a daemon).
    func isListening() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8CString)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() where index < raw.count { raw[index] = UInt8(bitPattern: byte) }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        } == 0
    }

    var daemonLog: String {
        (try? String(contentsOf: home.appendingPathComponent("agentrond.test.log"), encoding: .utf8)) ?? ""
    }

    struct Result {
        var code: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the real `agentron` CLI and collects its output.
    func run(
        _ arguments: [String], environment overrides: [String: String] = [:], timeout: Duration = .seconds(120),
        wrapper: [String] = []
    )
        async throws -> Result
    {
        let process = Process()
        let cli = self.cli ?? binDirectory.appendingPathComponent("agentron")
        if let program = wrapper.first {
            // Run through another program (setpriv, to act as another user).
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(wrapper.dropFirst()) + [cli.path] + arguments
        } else {
            process.executableURL = cli
            process.arguments = arguments
        }
        process.environment = environment.merging(overrides) { $1 }
        let out = home.appendingPathComponent("cli-\(UUID().uuidString.prefix(8)).out")
        let err = home.appendingPathComponent("cli-\(UUID().uuidString.prefix(8)).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try await Self.waitForExit(
            process, timeout: timeout,
            else: "agentron \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        let result = Result(
            code: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
        return result
    }

    /// Runs a program to its end and returns its exit status and what it printed (stdout
    /// and stderr together): for scripts and tools beside agentron (sh, python3, scripts/).
    static func capture(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
        -> (code: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// Waits, without blocking a thread, for `process` to exit; after `timeout` it is killed
    /// by pid and `message` thrown.
    static func waitForExit(_ process: Process, timeout: Duration, else message: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw HarnessError(message)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.waitUntilExit()
    }

    /// A pid file the FakeEngine writes: "main enginecore helper" (0 when absent).
    /// Writes a profile into this home's profile directory (`config/profiles/<name>.yaml`).
    func writeProfile(_ name: String, _ yaml: String) throws {
        let directory = home.appendingPathComponent("config/profiles")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try yaml.write(to: directory.appendingPathComponent("\(name).yaml"), atomically: true, encoding: .utf8)
    }

    func pidFile(_ name: String) -> URL { home.appendingPathComponent("\(name).pids") }

    func readPids(_ name: String) async throws -> [Int32] {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let text = try? String(contentsOf: pidFile(name), encoding: .utf8) {
                let pids = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }.filter {
                    $0 > 0
                }
                if !pids.isEmpty {
                    lock.withLock { extraPids.formUnion(pids) }
                    return pids
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("the engine never wrote \(pidFile(name).path)")
    }

    func track(_ pid: Int32) { _ = lock.withLock { extraPids.insert(pid) } }

    /// Stops the daemon (SIGTERM, then SIGKILL) and kills every pid a test learned of.
    func shutdown() {
        if let daemon, daemon.isRunning {
            kill(daemon.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(20)
            while daemon.isRunning, Date() < deadline { usleep(10_000) }
            if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) }
            daemon.waitUntilExit()
        }
        for pid in lock.withLock({ extraPids }) where Self.isAlive(pid) {
            kill(pid, SIGKILL)
        }
        // What a test that killed the daemon (live restore) left running: every process
        // started for this harness, found by its environment, by pid.
        for pid in engineProcesses() { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(at: home)
    }

    /// Alive and not a zombie, read from /proc.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Waits (bounded) until none of `pids` is alive; returns those still alive.
    static func waitGone(_ pids: [Int32], within seconds: Double = 5) async -> [Int32] {
        let deadline = Date().addingTimeInterval(seconds)
        var alive = pids.filter(isAlive)
        while !alive.isEmpty, Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            alive = alive.filter(isAlive)
        }
        return alive
    }

    func json(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw HarnessError("not a JSON object: \(text)")
        }
        return object
    }

    func servers(all: Bool = false) async throws -> [[String: Any]] {
        let result = try await run(["ps", "--json"] + (all ? ["--all"] : []))
        guard result.code == 0 else { throw HarnessError("ps failed: \(result.stderr)") }
        return try json(result.stdout)["servers"] as? [[String: Any]] ?? []
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
