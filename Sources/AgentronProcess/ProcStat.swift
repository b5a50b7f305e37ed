import AgentronCore
import Glibc

/// One process as /proc/<pid>/stat describes it: enough to find an engine's whole tree and
/// to tell a live process from a reused pid (docs/state-machine.md: pid + start time).
public struct ProcStat: Sendable, Equatable {
    public var pid: Int32
    public var comm: String
    /// R, S, D, Z, T, ...; `Z` is a zombie: dead, waiting to be reaped.
    public var state: Character
    public var ppid: Int32
    public var pgrp: Int32
    public var session: Int32
    /// Clock ticks after boot at which the process started; with the pid, a unique identity.
    public var startTime: UInt64

    public var isZombie: Bool { state == "Z" || state == "X" }

    /// Reads /proc/<pid>/stat; nil when the process does not exist (any more).
    public static func read(pid: Int32) -> ProcStat? {
        guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
        return parse(text)
    }

    /// The format is `pid (comm) state ppid pgrp session ...`; comm may hold spaces and
    /// parentheses, so split at the last ')'.
    static func parse(_ text: String) -> ProcStat? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"),
            let pid = Int32(String(text[..<open]).trimmingSpaces)
        else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is state (field 3); starttime is field 22 → fields[19].
        guard fields.count > 19, let state = fields[0].first, let ppid = Int32(fields[1]),
            let pgrp = Int32(fields[2]), let session = Int32(fields[3]), let start = UInt64(fields[19])
        else { return nil }
        return ProcStat(pid: pid, comm: comm, state: state, ppid: ppid, pgrp: pgrp, session: session, startTime: start)
    }

    /// The children of `pid` (zombies included) from /proc/<pid>/task/*/children: a few
    /// small reads instead of one per process on the machine. Nil when the kernel does not
    /// offer those files (CONFIG_PROC_CHILDREN), so the caller scans /proc instead.
    public static func childPIDs(of pid: Int32) -> [Int32]? {
        guard let threads = directoryEntries("/proc/\(pid)/task") else { return nil }
        var result: [Int32] = []
        for name in threads where Int32(name) != nil {
            // A thread that has just exited has no file any more; that is not "unsupported".
            guard let text = readSmallFile("/proc/\(pid)/task/\(name)/children") else {
                if access("/proc/\(pid)/task/\(name)", F_OK) == 0 { return nil }
                continue
            }
            result += text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        }
        return result
    }

    /// Every process visible in /proc.
    public static func all() -> [ProcStat] {
        (directoryEntries("/proc") ?? []).compactMap { name in Int32(name).flatMap { read(pid: $0) } }
    }

    /// The pids below `root` in `table`, following parent links (children, grandchildren, ...).
    public static func descendants(of root: Int32, in table: [ProcStat]) -> [ProcStat] {
        var children: [Int32: [ProcStat]] = [:]
        for stat in table { children[stat.ppid, default: []].append(stat) }
        var result: [ProcStat] = []
        var queue = [root]
        while let pid = queue.popLast() {
            for child in children[pid] ?? [] where child.pid != root {
                result.append(child)
                queue.append(child.pid)
            }
        }
        return result
    }
}

/// Reads a small file (from /proc, a pid file) whole; nil when it cannot be opened.
public func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The names in a directory (`.` and `..` included); nil, with errno from opendir(3), when
/// it cannot be opened.
func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        names.append(
            withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            })
    }
    return names
}
