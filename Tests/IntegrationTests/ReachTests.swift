import Foundation
import Testing

/// Reaching a root daemon as another user (issue #13, "Reach"): its socket is 0660 with
/// the daemon's group, members get in, others are refused with one line; a member whose
/// own daemon is not running is served by the system daemon instead of starting a private
/// one; `--host` / AGENTRON_HOST name a socket. Needs root (to be the root daemon and to
/// act as another user with setpriv), as CI runs.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ReachTests {
    /// `users` (gid 100 on Debian) stands in for `agentron`: no group is created here.
    static let group = "users"
    static let nobody: UInt32 = 65534

    static func groupID(_ name: String) -> UInt32? {
        guard let entry = getgrnam(name) else { return nil }
        return entry.pointee.gr_gid
    }

    /// `setpriv` as uid 65534 with `gid` as its only group.
    static func asNobody(gid: UInt32) -> [String] {
        ["/usr/bin/setpriv", "--reuid=\(nobody)", "--regid=\(gid)", "--clear-groups"]
    }

    @Test func aGroupMemberUsesTheRootDaemonAndOthersAreRefused() async throws {
        try #require(getuid() == 0, "acting as another user needs root (CI runs as root)")
        let gid = try #require(Self.groupID(Self.group), "the group \(Self.group) exists on Debian")
        let harness = try Harness()
        defer { harness.shutdown() }
        try await harness.startDaemon(environment: ["AGENTRON_SOCKET_GROUP": Self.group])

        var info = stat()
        #expect(stat(harness.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660, "a root daemon's socket lets its group in")
        #expect(info.st_gid == gid)
        #expect(stat(harness.home.appendingPathComponent("run").path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o755, "its directory can be reached by the group's members")

        // A home of nobody's own, with no daemon: what it would use when the system's is unreachable.
        let own = harness.home.appendingPathComponent("nobody-home")
        try FileManager.default.createDirectory(at: own, withIntermediateDirectories: true)
        #expect(chown(own.path, Self.nobody, Self.nobody) == 0)
        let member = Self.asNobody(gid: gid)
        let stranger = Self.asNobody(gid: Self.nobody)

        // --host: straight to the named socket.
        let named = try await harness.run(
            ["--host", "unix://" + harness.socketPath, "ps", "--json"], environment: ["AGENTRON_HOME": own.path],
            wrapper: member)
        #expect(named.code == 0, "\(named.stderr)")
        #expect(try harness.json(named.stdout)["daemonKind"] as? String == "host")

        // No --host: nobody's own daemon is not running, the system one answers.
        let system = ["AGENTRON_HOME": own.path, "AGENTRON_SYSTEM_SOCKET": harness.socketPath]
        let listed = try await harness.run(["ps", "--json"], environment: system, wrapper: member)
        #expect(listed.code == 0, "\(listed.stderr)")
        let list = try harness.json(listed.stdout)
        #expect(list["daemonKind"] as? String == "system")
        #expect(list["daemon"] as? String == harness.socketPath)

        // `up` as the member acts on the system daemon: one daemon, no private one.
        let up = try await harness.run(
            ["up", "Qwen/Qwen2.5-0.5B-Instruct", "--engine", "vllm", "--name", "shared"], environment: system,
            wrapper: member)
        #expect(up.code == 0, "\(up.stderr)")
        #expect(try await harness.servers().map { $0["name"] as? String } == ["shared"])
        #expect(
            !FileManager.default.fileExists(atPath: own.appendingPathComponent("run/agentron.sock").path),
            "no private daemon was started")
        let doctor = try await harness.run(["doctor"], environment: system, wrapper: member)
        #expect(doctor.stdout.contains("(the system daemon)"), "\(doctor.stdout)")

        // Not in the group: the kernel refuses the connection; the CLI says why instead of
        // silently starting a second daemon.
        let refused = try await harness.run(
            ["--host", harness.socketPath, "ps"], environment: ["AGENTRON_HOME": own.path], wrapper: stranger)
        #expect(refused.code != 0)
        #expect(
            refused.stderr.contains("ermission denied") || refused.stderr.contains("may not use"), "\(refused.stderr)")
        let checked = try await harness.run(["doctor", "--json"], environment: system, wrapper: stranger)
        let daemon = try #require(try harness.json(checked.stdout)["daemon"] as? [String: Any])
        #expect(daemon["kind"] as? String == "own")
        #expect((daemon["systemRefusal"] as? String)?.contains("usermod -aG agentron") == true, "\(daemon)")
        #expect(try await harness.run(["down", "shared"]).code == 0)
    }

    @Test func aHostThatIsNotASocketPathIsOneLine() async throws {
        let harness = try Harness()
        defer { harness.shutdown() }
        for host in ["tcp://127.0.0.1:2375", "relative/agentron.sock"] {
            let result = try await harness.run(["--host", host, "ps"])
            #expect(result.code == 64, "usage error: \(result.stderr)")
            #expect(result.stderr.contains("is not a Unix socket"), "\(result.stderr)")
            let byVariable = try await harness.run(["ps"], environment: ["AGENTRON_HOST": host])
            #expect(byVariable.code == 64 && byVariable.stderr.contains("is not a Unix socket"))
        }
        let missing = try await harness.run(["--host"])
        #expect(missing.code == 64 && missing.stderr.contains("--host needs a value"), "\(missing.stderr)")
    }
}
