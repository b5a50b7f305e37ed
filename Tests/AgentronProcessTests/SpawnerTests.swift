import AgentronCore
import CProcessShims
import Foundation
import Testing

@testable import AgentronProcess

/// The fork/exec every engine goes through (Spawner, agentron_spawn): what the child gets
/// (argv, exactly the environment given, a working directory, stdout and stderr appended to
/// its log, stdin from /dev/null, no other descriptor), its own session, and clear errors.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SpawnerTests {
    @Test func theChildGetsItsArgvEnvironmentDirectoryAndLog() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let work = scope.path("work dir")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        // $0 and the arguments, each in brackets; the environment as execve gave it; the
        // directory; one line on stderr.
        let script = #"""
            printf '[%s]' "$0" "$@"; echo
            tr '\0' '\n' < /proc/$$/environ | sort
            echo "cwd=$(pwd)"
            echo "stdin=$(readlink /proc/$$/fd/0)"
            echo "to stderr" >&2
            sleep 0.5  # outlives the waiter's registration (ExitWatcherTests.registration)
            """#
        let environment = ["PATH": "/usr/bin:/bin", "GREETING": "hello world", "EMPTY": ""]
        let process = try scope.spawn(
            ["sh", "-c", script, "name-zero", "a b", "", "c"], environment: environment, workingDirectory: work)
        #expect(await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) == .exited(code: 0))

        let lines = scope.read("out.log").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "[name-zero][a b][][c]")
        let environmentLines = lines.filter { $0.contains("=") && !$0.hasPrefix("cwd=") && !$0.hasPrefix("stdin=") }
        #expect(
            environmentLines == ["EMPTY=", "GREETING=hello world", "PATH=/usr/bin:/bin"],
            "exactly the environment given")
        #expect(lines.contains("cwd=\(work)"))
        #expect(lines.contains("stdin=/dev/null"))
        #expect(lines.contains("to stderr"), "stderr goes to the same log")
    }

    @Test func theLogIsAppendedToNotTruncated() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        try Data("earlier run\n".utf8).write(to: URL(fileURLWithPath: scope.path("out.log")))
        for word in ["first", "second"] {
            let process = try scope.spawn(["sh", "-c", "sleep 0.5; echo \(word)"])
            #expect(await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) == .exited(code: 0))
        }
        #expect(scope.read("out.log") == "earlier run\nfirst\nsecond\n")
    }

    @Test func theChildLeadsANewSessionAndGroup() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sleep", "30"])
        let stat = try #require(ProcStat.read(pid: process.pid))
        #expect(stat.session == process.pid && stat.pgrp == process.pid, "a session and group of its own: \(stat)")
        #expect(process.groupID == process.pid)
        #expect(stat.ppid == getpid())
        #expect(stat.startTime == process.startTime && process.startTime > 0)
        #expect(stat.session != getsid(0), "not the test's session")
        #expect(process.pidfd >= 0)
    }

    /// Only 0, 1 and 2 cross exec: descriptors this process opened without O_CLOEXEC (a
    /// daemon's sockets, other engines' logs) must not reach an engine.
    @Test func theChildInheritsNoOtherDescriptor() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let leaky = open("/dev/null", O_RDONLY)  // no O_CLOEXEC, on purpose
        #expect(leaky >= 0)
        defer { close(leaky) }
        var pipeFDs: [Int32] = [-1, -1]
        #expect(pipe(&pipeFDs) == 0)
        defer { for fd in pipeFDs { close(fd) } }

        // The spawn returns once the exec has happened (the status pipe closed on exec), and
        // sleep opens nothing of its own: what it holds is what it inherited.
        let process = try scope.spawn(["sleep", "30"])
        #expect(ProcStat.read(pid: process.pid)?.comm == "sleep")
        let descriptors = openDescriptors(of: process.pid)
        #expect(Set(descriptors.keys) == [0, 1, 2], "descriptors beyond 0,1,2 leaked: \(descriptors)")
        #expect(descriptors[0] == "/dev/null")
        #expect(descriptors[1] == scope.path("out.log"))
        #expect(descriptors[2] == scope.path("out.log"))
    }

    @Test func aMissingProgramIsAClearError() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        #expect(
            throws: SpawnError.executableNotFound(name: "no-such-engine-xyz", searched: "PATH=/nonexistent:/usr/bin")
        ) {
            try scope.spawn(["no-such-engine-xyz", "serve"], environment: ["PATH": "/nonexistent:/usr/bin"])
        }
        let error = SpawnError.executableNotFound(name: "no-such-engine-xyz", searched: "PATH=/nonexistent:/usr/bin")
        #expect(error.description == "no-such-engine-xyz: command not found on PATH (PATH=/nonexistent:/usr/bin)")
        #expect(throws: SpawnError.executableNotFound(name: "vllm", searched: "PATH is empty")) {
            try scope.spawn(["vllm"], environment: ["PATH": ""])
        }
        #expect(throws: SpawnError.executableNotFound(name: "/nonexistent/vllm", searched: "PATH=/usr/bin:/bin")) {
            try scope.spawn(["/nonexistent/vllm"])
        }
        #expect(throws: SpawnError.spawnFailed(executable: "", errno: EINVAL)) {
            try scope.spawn([])
        }
    }

    /// An executable the kernel cannot run: the child's exec error reaches the caller (the
    /// status pipe), not a child that exits 127 unexplained.
    @Test func anExecFailureIsReportedWithItsErrno() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let program = scope.path("not-a-program")
        try Data([0x00, 0x01, 0x02, 0x03]).write(to: URL(fileURLWithPath: program))
        chmod(program, 0o755)
        #expect(throws: SpawnError.spawnFailed(executable: program, errno: ENOEXEC)) {
            try scope.spawn([program])
        }
        #expect(
            SpawnError.spawnFailed(executable: program, errno: ENOEXEC).description
                == "cannot start \(program): Exec format error")
        // A working directory that does not exist fails in the child, before exec.
        #expect(throws: SpawnError.spawnFailed(executable: "/usr/bin/true", errno: ENOENT)) {
            try scope.spawn(["true"], workingDirectory: scope.path("missing"))
        }
    }

    @Test func aLogFileThatCannotBeOpenedIsAClearError() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        #expect(throws: SpawnError.logFile(path: scope.path("no/such/dir.log"), errno: ENOENT)) {
            try scope.spawn(["true"], log: "no/such/dir.log")
        }
        #expect(
            SpawnError.logFile(path: "/x.log", errno: EACCES).description
                == "cannot open log file /x.log: Permission denied")
    }

    @Test func resolvingFollowsPathLikeAShell() throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        // A directory and a non-executable file named like the program are passed over.
        try FileManager.default.createDirectory(atPath: scope.path("a/tool"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scope.path("b"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: scope.path("b/tool"), contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644])
        try FileManager.default.createDirectory(atPath: scope.path("c"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: scope.path("c/tool"), contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        let path = [scope.path("a"), "", scope.path("b"), scope.path("c")].joined(separator: ":")
        #expect(Spawner.resolveExecutable("tool", path: path) == scope.path("c/tool"))
        #expect(Spawner.resolveExecutable("tool", path: scope.path("a")) == nil)
        #expect(
            Spawner.resolveExecutable(scope.path("c/tool"), path: "") == scope.path("c/tool"),
            "a name with a slash is taken as is")
        #expect(Spawner.resolveExecutable(scope.path("b/tool"), path: nil) == nil)
        #expect(Spawner.resolveExecutable("sh", path: nil) != nil, "no PATH: the usual directories")
    }
}

/// pidfds: opened at spawn or adoption, signalled, and reaped with the exit code or signal.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct PidfdTests {
    @Test func anExitCodeIsReapedThroughThePidfd() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sh", "-c", "sleep 0.5; exit 7"])
        #expect(await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) == .exited(code: 7))
        #expect(ProcStat.read(pid: process.pid) == nil, "reaped: no zombie left")
    }

    @Test func aSignalSentThroughThePidfdIsReapedAsASignal() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sleep", "30"])
        let exit = Task { await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) }
        try await Task.sleep(for: ExitWatcherTests.registration)
        #expect(agentron_pidfd_send_signal(process.pidfd, SIGTERM) == 0)
        #expect(await exit.value == .signaled(signal: SIGTERM))
        // The process is gone and reaped: the pidfd refuses signals now (ESRCH), rather
        // than reaching a process that reused the pid.
        #expect(agentron_pidfd_send_signal(process.pidfd, SIGKILL) != 0)
    }

    @Test func aSignalFromOutsideIsReportedToo() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        let process = try scope.spawn(["sleep", "30"])
        let exit = Task { await ExitWatcher.shared.waitForExit(pid: process.pid, pidfd: process.pidfd) }
        try await Task.sleep(for: ExitWatcherTests.registration)
        kill(process.pid, SIGKILL)
        #expect(await exit.value == .signaled(signal: SIGKILL))
    }

    /// Live restore finds an engine again by pid and start time; a wrong start time (the pid
    /// was reused) or a dead pid gives nothing.
    @Test func adoptionChecksTheStartTime() async throws {
        let scope = try ProcessScope()
        defer { scope.stop() }
        // A grandchild: not our child, as an engine is after a daemon restart.
        let parent = try scope.spawn(["sh", "-c", "sleep 30 & echo $! > \(scope.path("pid")); wait"])
        let pid = try #require(try await scope.pids(in: "pid").first)
        let stat = try #require(ProcStat.read(pid: pid))
        #expect(stat.ppid == parent.pid)

        #expect(EngineProcess.adopt(pid: pid, startTime: stat.startTime &+ 1) == nil, "a reused pid is not adopted")
        let adopted = try #require(EngineProcess.adopt(pid: pid, startTime: stat.startTime))
        defer { close(adopted.pidfd) }
        #expect(adopted.pid == pid && adopted.startTime == stat.startTime && adopted.pidfd >= 0)

        #expect(agentron_pidfd_send_signal(adopted.pidfd, SIGKILL) == 0)
        // Not our child: it is gone, but only its parent learns how it ended.
        #expect(await ExitWatcher.shared.waitForExit(pid: pid, pidfd: adopted.pidfd) == .unknown)
        #expect(EngineProcess.adopt(pid: pid, startTime: stat.startTime) == nil, "a dead pid is not adopted")
    }
}
