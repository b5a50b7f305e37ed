import Glibc

/// cgroup v2 placement for engines, used when the daemon can create cgroups (root, or a
/// subtree delegated by systemd with `Delegate=yes`). An engine's cgroup holds every
/// process it ever starts, whatever session or parent they end up with, and
/// `cgroup.kill` (Linux 5.14) ends them all at once (issue #3). Without it, sessions plus
/// subreaper bookkeeping do the same job (ProcessTree).
public struct Cgroups: Sendable, Equatable {
    /// The directory under which each engine gets its own cgroup.
    public let base: String

    /// Set to `off` to use sessions only (tests exercise both paths).
    public static let environmentSwitch = "AGENTRON_CGROUPS"

    /// Finds the cgroup2 mount and the daemon's own cgroup, and checks that a child cgroup
    /// can be created there with `cgroup.kill` available. Nil when any of that fails.
    public static func detect(environment: [String: String]) -> Cgroups? {
        if environment[environmentSwitch] == "off" { return nil }
        guard let mount = unifiedMountPoint(), let own = ownCgroup() else { return nil }
        let ownPath = own == "/" ? mount : mount + own
        let base = ownPath + "/agentron-engines"
        if mkdir(base, 0o755) != 0 && errno != EEXIST { return nil }
        let probe = base + "/.probe-\(getpid())"
        guard mkdir(probe, 0o755) == 0 || errno == EEXIST else { return nil }
        defer { rmdir(probe) }
        guard access(probe + "/cgroup.kill", W_OK) == 0, access(probe + "/cgroup.procs", W_OK) == 0 else { return nil }
        return Cgroups(base: base)
    }

    /// Creates a fresh cgroup for one run of an engine.
    public func create(name: String) -> EngineCgroup? {
        let path = "\(base)/\(name)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        guard mkdir(path, 0o755) == 0 else { return nil }
        return EngineCgroup(path: path)
    }

    static func unifiedMountPoint() -> String? {
        guard let text = readSmallFile("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            // "... mountpoint options - fstype source superoptions"
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    static func ownCgroup() -> String? {
        guard let text = readSmallFile("/proc/self/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }
}

/// One engine run's cgroup.
public struct EngineCgroup: Sendable, Equatable, Codable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The cgroup's directory, opened for the spawn to place the child in it.
    public func openDirectory() -> Int32 {
        open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    public var pids: [Int32] {
        guard let text = readSmallFile(path + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    public var exists: Bool { access(path, F_OK) == 0 }

    /// SIGKILL to every process in the cgroup, atomically with respect to forks.
    @discardableResult
    public func kill() -> Bool {
        let fd = open(path + "/cgroup.kill", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "1", 1) == 1
    }

    /// Removes the (empty) cgroup; fails while processes remain.
    @discardableResult
    public func remove() -> Bool {
        rmdir(path) == 0 || errno == ENOENT
    }
}
