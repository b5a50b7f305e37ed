import AgentronCore
import Foundation
import Testing

@testable import AgentronProcess

/// /proc/<pid>/stat as the kernel writes it; comm may hold anything but NUL.
struct ProcStatTests {
    /// A line with every field up to starttime (field 22) and a few after.
    static func line(pid: String = "4242", comm: String = "python3", state: String = "S", start: String = "987654")
        -> String
    {
        "\(pid) (\(comm)) \(state) 1 4242 4242 0 -1 4194560 2514 0 0 0 12 3 0 0 20 0 4 0 \(start) 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 3 0 0"
    }

    @Test func theFieldsTheTreeWalkUses() throws {
        let stat = try #require(ProcStat.parse(Self.line()))
        #expect(
            stat
                == ProcStat(
                    pid: 4242, comm: "python3", state: "S", ppid: 1, pgrp: 4242, session: 4242, startTime: 987654))
        #expect(!stat.isZombie)
        #expect(ProcStat.parse(Self.line(state: "Z"))?.isZombie == true)
        #expect(ProcStat.parse(Self.line(state: "X"))?.isZombie == true)
    }

    /// vLLM renames its processes (`VLLM::EngineCore`); anyone may put spaces and
    /// parentheses in a name, which is why the split is at the last ')'.
    @Test(arguments: ["VLLM::EngineCore", "a b", "x) R 1 2 3 (y", ")", "((", ""])
    func namesWithSpacesAndParentheses(_ comm: String) throws {
        let stat = try #require(ProcStat.parse(Self.line(comm: comm)))
        #expect(stat.comm == comm)
        #expect(stat.ppid == 1 && stat.session == 4242 && stat.startTime == 987654)
    }

    @Test(arguments: [
        "", "garbage", "4242 python3 S 1 2 3", "4242 (python3) S 1 4242 4242",
        "x (python3) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
        ProcStatTests.line(start: "99999999999999999999999"), ProcStatTests.line(pid: "99999999999"),
        ProcStatTests.line(start: "-1"),
    ])
    func malformedLinesGiveNothingAndNeverTrap(_ text: String) {
        #expect(ProcStat.parse(text) == nil)
    }

    @Test func thisProcessReadsAsItself() throws {
        let me = try #require(ProcStat.read(pid: getpid()))
        #expect(me.pid == getpid() && me.ppid == getppid() && me.pgrp == getpgrp() && me.session == getsid(0))
        #expect(me.startTime > 0)
        #expect(ProcStat.all().contains(me))
        #expect(ProcStat.read(pid: Int32.max) == nil)
        #expect(readSmallFile("/proc/self/stat")?.hasPrefix("\(getpid()) (") == true)
        #expect(readSmallFile("/nonexistent") == nil)
    }
}

/// /proc/net/tcp{,6} lines: who listens on, or holds, a port (issue #10).
struct ProcNetTCPTests {
    static let header =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"

    /// Port 8001 is 1F41 in the table.
    static let table = [
        header,
        "   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0",
        "   1: 00000000:1F41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0",
        "   2: 0100007F:1F41 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 20 4 30 10 -1",
        "   3: 0100007F:1F42 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0000000000000000 100 0 0 10 0",
        "   4: 0100007F:1F41 00000000:0000 0A",
        "   5: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 555 1",
        "   6: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 666 1",
        "   7: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  notauid   0 777 1",
        "",
    ].joined(separator: "\n")

    static let table6 = [
        header,
        "   0: 00000000000000000000000001000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 888 1 0000000000000000 100 0 0 10 0",
        "   1: 0000000000000000FFFF00000100007F:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 999 1 0000000000000000 100 0 0 10 0",
    ].joined(separator: "\n")

    @Test func listenersOnThePortAreFoundWithOwnerInodeAndAddress() throws {
        let listening = Ports.sockets(inTable: Self.table, isV6: false, port: 8001, states: [Ports.listenState])
        #expect(
            listening.map(\.inode) == ["111", "777"],
            "established, other ports and short or malformed lines are not listeners")
        #expect(listening.first?.uid == 1000)
        #expect(listening.first?.address == ListenAddress.v4("127.0.0.1"))
        #expect(listening.last?.uid == UInt32.max, "an unreadable uid is nobody's, not root's")
        let connections = Ports.sockets(inTable: Self.table, isV6: false, port: 8001, states: Ports.connectionStates)
        #expect(connections.map(\.inode).contains("222"), "any state but LISTEN is a connection's")
        #expect(!connections.map(\.inode).contains("111"))
        #expect(
            Ports.sockets(inTable: Self.table, isV6: false, port: 8002, states: [Ports.listenState]).map(\.inode) == [
                "444"
            ])
        #expect(Ports.sockets(inTable: Self.table, isV6: false, port: 9, states: [Ports.listenState]).isEmpty)
        #expect(Ports.sockets(inTable: Self.header, isV6: false, port: 8001, states: [Ports.listenState]).isEmpty)
        #expect(Ports.sockets(inTable: "", isV6: false, port: 8001, states: [Ports.listenState]).isEmpty)
    }

    @Test func ipv6ListenersAndWhatAProbeOfLoopbackReaches() throws {
        let listening = Ports.sockets(inTable: Self.table6, isV6: true, port: 8001, states: [Ports.listenState])
        #expect(listening.map(\.inode) == ["888", "999"])
        let loopback6 = try #require(ListenAddress.v6("::1"))
        let loopback4 = try #require(ListenAddress.v4("127.0.0.1"))
        #expect(listening[0].address == loopback6)
        #expect(listening[1].address == ListenAddress.v4Mapped(loopback4))
        #expect(listening[1].address.reaches(loopback4), "::ffff:127.0.0.1 takes IPv4 connections to 127.0.0.1")
        #expect(!listening[0].address.reaches(loopback4))
        #expect(ListenAddress.targets(for: "[::1]") == [loopback6])
        #expect(ListenAddress.targets(for: "::") == [loopback4], "an engine on every address is probed on loopback")
        #expect(ListenAddress.v4("300.1.1.1") == nil && ListenAddress.v6("not an address") == nil)
    }

    /// A socket bound and not yet listening (vLLM while it loads) holds its port: no other
    /// engine may be handed it (issue #10).
    @Test func aBoundSocketHoldsItsPortUntilClosed() throws {
        let socket = try #require(BoundSocket(reuseAddress: false))
        var isOpen = true
        defer { if isOpen { close(socket.fd) } }
        #expect(!Ports.isFree(host: "127.0.0.1", port: socket.port))
        #expect(Ports.listeningSockets(port: socket.port).isEmpty, "bound is not listening")
        close(socket.fd)
        isOpen = false
        #expect(Ports.isFree(host: "127.0.0.1", port: socket.port))
    }

    /// With SO_REUSEADDR (uvicorn sets it) a probe with SO_REUSEADDR binds beside the
    /// engine's socket, and /proc/net/tcp does not list a socket that is only bound; the
    /// plain bind that fails with nothing in the table to explain it is what shows it held.
    @Test func aBoundSocketWithReuseAddressHoldsItsPort() throws {
        let socket = try #require(BoundSocket(reuseAddress: true))
        var isOpen = true
        defer { if isOpen { close(socket.fd) } }
        #expect(Ports.sockets(port: socket.port, states: Ports.connectionStates.union([Ports.listenState])).isEmpty)
        #expect(!Ports.isFree(host: "127.0.0.1", port: socket.port))
        close(socket.fd)
        isOpen = false
        #expect(Ports.isFree(host: "127.0.0.1", port: socket.port))
    }

    /// The side that closes a connection first keeps it in TIME_WAIT on its port for a
    /// minute (an engine that crashed while serving). Engines bind over it with
    /// SO_REUSEADDR, so the port is free: a restart on a fixed port must not wait.
    @Test func aPortLeftWithATimeWaitConnectionIsFree() async throws {
        let listener = try #require(BoundSocket(reuseAddress: true))
        var listenerOpen = true
        defer { if listenerOpen { close(listener.fd) } }
        #expect(listen(listener.fd, 1) == 0)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(listener.port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let served = accept(listener.fd, nil, nil)
        #expect(served >= 0)
        close(served)  // the serving side closes first: its end (on the port) will linger
        close(listener.fd)
        listenerOpen = false
        close(client)
        #expect(
            await waitUntil(timeout: .seconds(5)) {
                !Ports.sockets(port: listener.port, states: ["06"]).isEmpty
            }, "a TIME_WAIT connection on the port")
        #expect(Ports.isFree(host: "127.0.0.1", port: listener.port))
    }
}

/// A TCP socket bound to an ephemeral port on 127.0.0.1, not listening.
struct BoundSocket {
    let fd: Int32
    let port: Int

    init?(reuseAddress: Bool) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        if reuseAddress { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Engine output files: copy-then-truncate rotation, and tails across the rotated files.
struct LogFilesTests {
    static func directory() throws -> String {
        var template = Array("/tmp/agentron-logs-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw ScopeError("mkdtemp failed") }
        return String(cString: created)
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func rotationKeepsTheNewestCopiesAndEmptiesTheLiveFile() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogFiles(directory: directory, name: "llama", maxBytes: 8, keep: 2)
        #expect(logs.path == directory + "/llama.log")
        #expect(logs.filesOldestFirst == [logs.path + ".2", logs.path + ".1", logs.path])
        #expect(!logs.rotateIfNeeded(), "no file: nothing to rotate")

        try Self.write("01234567", to: logs.path)
        #expect(!logs.rotateIfNeeded(), "at the cap, not over it")
        for run in ["first run\n", "second run\n", "third run\n"] {
            try Self.write(run, to: logs.path)
            #expect(logs.rotateIfNeeded())
            #expect(logs.currentSize == 0)
        }
        #expect(Self.read(logs.path + ".1") == "third run\n")
        #expect(Self.read(logs.path + ".2") == "second run\n")
        #expect(!FileManager.default.fileExists(atPath: logs.path + ".3"), "only `keep` copies")
        logs.remove()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    /// The engine keeps its descriptor (O_APPEND) across a rotation: its next line lands at
    /// the start of the emptied file, not after a hole the size of the old one.
    @Test func aWriterKeepsWritingToTheLiveFileAfterRotation() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogFiles(directory: directory, name: "engine", maxBytes: 16, keep: 1)
        let fd = open(logs.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        #expect(fd >= 0)
        defer { close(fd) }
        func emit(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        emit("loading weights, a long line\n")
        #expect(logs.rotateIfNeeded())
        emit("ready\n")
        #expect(Self.read(logs.path) == "ready\n")
        #expect(Self.read(logs.path + ".1") == "loading weights, a long line\n")
        #expect(logs.tail(lines: 5) == ["loading weights, a long line", "ready"])
    }

    @Test func tailsReadAcrossTheRotatedFiles() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogFiles(directory: directory, name: "s", maxBytes: 1 << 20, keep: 2)
        try Self.write("1\n2\n", to: logs.path + ".2")
        try Self.write("3\n4\n", to: logs.path + ".1")
        try Self.write("5\n", to: logs.path)
        #expect(logs.tail(lines: 3) == ["3", "4", "5"])
        #expect(logs.tail(lines: 100) == ["1", "2", "3", "4", "5"])
        #expect(logs.tail(lines: 0).isEmpty)
        #expect(logs.tail(lines: -3).isEmpty)
        #expect(logs.tail(lines: Int.max) == ["1", "2", "3", "4", "5"], "a huge count from a request does not trap")
        #expect(logs.lastLine() == "5")
    }

    /// Progress bars redraw with '\r' (the line shows what it finally showed) and some
    /// lines end in "\r\n".
    @Test func carriageReturnsShowTheFinalText() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogFiles(directory: directory, name: "s")
        try Self.write("Loading 10%\rLoading 50%\rLoading 100%\nwindows line\r\nlast\n\n", to: logs.path)
        #expect(logs.tail(lines: 10) == ["Loading 100%", "windows line", "last", ""])
        #expect(logs.lastLine() == "last")
    }

    /// What one run printed: the lines after the size read when it started.
    @Test func linesSinceAnOffsetAreOneRunsOutput() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogFiles(directory: directory, name: "s", maxBytes: 1 << 20, keep: 1)
        try Self.write("old run\n", to: logs.path)
        let offset = logs.currentSize
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logs.path))
        handle.seekToEndOfFile()
        handle.write(Data("new 1\nnew 2\nnew 3\n".utf8))
        try handle.close()
        #expect(logs.lines(since: offset, last: 10) == ["new 1", "new 2", "new 3"])
        #expect(logs.lines(since: offset, last: 2) == ["new 2", "new 3"])
        #expect(logs.lines(since: logs.currentSize, last: 5).isEmpty)
        #expect(
            logs.lines(since: 1 << 40, last: 2) == ["new 2", "new 3"], "an offset past the end (rotated): the tail")
    }
}
