import Dispatch
import Glibc
import Testing

@testable import AgentronCLI

/// The one way the CLI runs a child program (doctor's version and GPU queries, service's
/// systemctl): output captured and capped, exit status, and a deadline that kills the whole
/// process group.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SubprocessTests {
    @Test func capturesStdoutAndStderrAndTheExitStatus() async throws {
        let outcome = try await offThePool { Subprocess.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]) }
        #expect(outcome.status == 3)
        #expect(!outcome.succeeded)
        #expect(!outcome.timedOut)
        #expect(outcome.spawnError == nil)
        #expect(outcome.output == "out\nerr\n")
        let ok = try await offThePool { Subprocess.run(["true"]) }
        #expect(ok.succeeded && ok.output.isEmpty)
    }

    @Test func aSignalIsReportedAs128PlusItsNumber() async throws {
        let outcome = try await offThePool { Subprocess.run(["/bin/sh", "-c", "kill -KILL $$"]) }
        #expect(outcome.status == 128 + SIGKILL)
    }

    @Test func aMissingProgramSaysWhy() async throws {
        let outcome = try await offThePool { Subprocess.run(["/nonexistent/agentron-no-such-program", "--version"]) }
        #expect(outcome.status == 127)
        let error = try #require(outcome.spawnError)
        #expect(error.hasPrefix("cannot run /nonexistent/agentron-no-such-program: "), "\(error)")
        // Callers that print only the output (service) still say why.
        #expect(outcome.output == error)
        #expect(Subprocess.run([]).spawnError == "no program given")
    }

    @Test func outputIsCappedAndTheChildStillFinishes() async throws {
        let outcome = try await offThePool {
            Subprocess.run(["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; exit 4"])
        }
        #expect(outcome.output.utf8.count == Subprocess.maximumOutputBytes)
        #expect(outcome.status == 4)
    }

    /// doctor must answer promptly: a command past its deadline is killed with its children.
    @Test func theDeadlineKillsTheWholeGroup() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        // The shell prints its background child's pid, then waits for it.
        let outcome = try await offThePool {
            Subprocess.run(["/bin/sh", "-c", "sleep 30 & echo $!; wait"], timeout: .milliseconds(300))
        }
        let pid = try #require(
            pid_t(outcome.output.split(separator: "\n").first.map(String.init) ?? ""), "\(outcome.output)")
        defer { kill(pid, SIGKILL) }
        #expect(clock.now - started < .seconds(10))
        #expect(outcome.timedOut)
        #expect(outcome.status == 128 + SIGKILL)
        // The grandchild went with the group: gone, or a zombie waiting for its new parent.
        var gone = false
        for _ in 0..<100 where !gone {
            gone = kill(pid, 0) != 0 || Self.processState(pid) == "Z"
            if !gone { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(gone, "sleep \(pid) outlived the deadline")
    }

    @Test func onlyACommandWithADeadlineGetsItsOwnProcessGroup() async throws {
        // Field 5 of /proc/<pid>/stat is the process group ("(sh)" has no spaces in it).
        let script = ["/bin/sh", "-c", "cut -d' ' -f1,5 /proc/$$/stat"]
        let plain = try await offThePool { Subprocess.run(script) }
        let plainFields = plain.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        #expect(plainFields.count == 2 && plainFields[1] == getpgrp(), "\(plain.output)")

        let bounded = try await offThePool { Subprocess.run(script, timeout: .seconds(20)) }
        let boundedFields = bounded.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        #expect(boundedFields.count == 2 && boundedFields[0] == boundedFields[1], "\(bounded.output)")
        #expect(!bounded.timedOut && bounded.succeeded)
    }

    @Test func commandsRunSideBySide() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let outcomes = try await offThePool {
            Subprocess.runAll(
                [["sleep", "1"], ["sleep", "1"], ["sleep", "1"], ["/bin/sh", "-c", "echo hi"]], timeout: .seconds(20))
        }
        #expect(clock.now - started < .milliseconds(2900))
        #expect(outcomes.map(\.status) == [0, 0, 0, 0])
        #expect(outcomes[3].output == "hi\n")
    }

    @Test func whichFindsExecutablesLikeCommandV() {
        #expect(Subprocess.which("sh", path: "/nonexistent:/bin") == "/bin/sh")
        #expect(Subprocess.which("sh", path: "/nonexistent") == nil)
        #expect(Subprocess.which("/bin/sh", path: nil) == "/bin/sh")
        #expect(Subprocess.which("/nonexistent/sh", path: nil) == nil)
    }

    static func processState(_ pid: pid_t) -> String? {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = line.lastIndex(of: ")") else { return nil }
        return line[line.index(after: close)...].split(separator: " ").first.map(String.init)
    }
}

/// Runs blocking work (waiting for a child) on a Dispatch thread, not on one of Swift
/// concurrency's few cooperative threads.
private func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}
