import AgentronCore
import Foundation
import Testing

@testable import AgentronConfig

/// The runtime directory rule (RuntimeDirectory): only a real directory that we own and
/// nobody else can write to may hold the control socket.
@Suite(.serialized)
struct RuntimeDirectoryTests {
    /// A fresh private directory per test, removed at the end.
    private final class Scratch {
        let root: String
        init() throws {
            var template = Array((NSTemporaryDirectory() + "agentron-rundir-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            root = String(cString: made)
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    private func refusal(_ path: String, owners: [uid_t] = [geteuid()]) -> RuntimeDirectory.Refusal? {
        do {
            try RuntimeDirectory.validate(path: path, owners: owners)
            return nil
        } catch {
            return error
        }
    }

    @Test func aPrivateDirectoryOfOursIsAccepted() throws {
        let scratch = try Scratch()
        let path = scratch.root + "/run"
        #expect(mkdir(path, 0o700) == 0)
        #expect(refusal(path) == nil)
    }

    @Test func aMissingDirectoryPassesAndPrepareCreatesItPrivate() throws {
        let scratch = try Scratch()
        let parent = scratch.root + "/agentron-1000"
        let path = parent + "/agentron"
        #expect(refusal(path) == nil, "nobody controls a directory that does not exist yet")
        try RuntimeDirectory.prepare([parent, path])
        for directory in [parent, path] {
            var info = stat()
            #expect(lstat(directory, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700, "\(directory) is created 0700")
            #expect(info.st_uid == geteuid())
        }
    }

    @Test(arguments: [0o777, 0o770, 0o702] as [mode_t])
    func aGroupOrWorldWritableDirectoryIsRefused(mode: mode_t) throws {
        let scratch = try Scratch()
        let path = scratch.root + "/run"
        #expect(mkdir(path, 0o700) == 0)
        #expect(chmod(path, mode) == 0)
        let refused = try #require(refusal(path))
        #expect(refused.path == path)
        #expect(refused.description.contains("refusing the runtime directory \(path)"))
        #expect(refused.description.contains("mode 0\(String(mode, radix: 8))"))
        #expect(refused.description.contains("XDG_RUNTIME_DIR or AGENTRON_HOME"))
    }

    @Test(.enabled(if: geteuid() == 0, "chown to another user needs root"))
    func aDirectoryOwnedByAnotherUserIsRefused() throws {
        let scratch = try Scratch()
        let path = scratch.root + "/run"
        #expect(mkdir(path, 0o700) == 0)
        #expect(chown(path, 65534, 65534) == 0)
        let refused = try #require(refusal(path))
        #expect(refused.description.contains("refusing the runtime directory \(path)"))
        #expect(refused.description.contains("owned by uid 65534"))
        #expect(refused.description.contains("mode 0700"))
        // The daemon refuses to adopt it, too, even though it could chmod it as root.
        #expect(throws: RuntimeDirectory.PrepareError.self) { try RuntimeDirectory.prepare([path]) }
    }

    @Test func aSymlinkIsRefusedEvenToAGoodDirectory() throws {
        let scratch = try Scratch()
        let target = scratch.root + "/real"
        let link = scratch.root + "/run"
        #expect(mkdir(target, 0o700) == 0)
        #expect(symlink(target, link) == 0)
        let refused = try #require(refusal(link))
        #expect(refused.description.contains("refusing the runtime directory \(link): it is a symlink"))
        #expect(throws: RuntimeDirectory.PrepareError.self) { try RuntimeDirectory.prepare([link]) }
    }

    @Test func rootOwnedIsAcceptedOnlyWhenRootIsTrusted() throws {
        let scratch = try Scratch()
        let path = scratch.root + "/run"
        #expect(mkdir(path, 0o755) == 0)
        // Whatever we run as, a directory we own passes with us among the owners; one
        // owned by somebody else does not.
        #expect(refusal(path, owners: [geteuid()]) == nil)
        #expect(refusal(path, owners: [geteuid() == 4242 ? 4243 : 4242]) != nil)
    }

    @Test func theTmpFallbackParentMustBeOursToo() {
        let fallback = AgentronPaths.current(environment: ["HOME": "/home/x"])
        if getuid() == 0 {
            #expect(fallback.runtimeDirectoriesToOwn == ["/run/agentron"])
        } else {
            #expect(
                fallback.runtimeDirectoriesToOwn == ["/tmp/agentron-\(getuid())", "/tmp/agentron-\(getuid())/agentron"])
        }
        let xdg = AgentronPaths(
            runtimeDirectory: "/run/user/1000/agentron", stateDirectory: "/s", configDirectory: "/c",
            profileDirectories: [])
        #expect(xdg.runtimeDirectoriesToOwn == ["/run/user/1000/agentron"])
        let home = AgentronPaths.current(environment: ["AGENTRON_HOME": "/h"])
        #expect(home.runtimeDirectoriesToOwn == ["/h/run"])
    }
}
