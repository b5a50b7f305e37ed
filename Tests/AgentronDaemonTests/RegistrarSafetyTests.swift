import AgentronConfig
import AgentronCore
import Foundation
import Logging
import Testing

@testable import AgentronDaemon

// Safe files as root: agentrond, running as root, writes provider files into directories
// that belong to users. Nothing planted there (a link, a FIFO, a device, a file under the
// temp file's name) may make it touch a file elsewhere, block, or run out of memory, and
// what it creates there belongs to the directory's owner.

private let nobody: uid_t = 65534
private let nogroup: gid_t = 65534
private let isRoot = getuid() == 0
private let rootOnly = "needs root: it checks what a root daemon does in a directory owned by uid 65534"

/// A private directory owned by nobody (65534), and a root-owned one beside it for the
/// files a planted link points at; both removed when the test ends.
private final class UserDirectory: @unchecked Sendable {
    let root: String
    let outside: String

    init() throws {
        // /tmp, not $TMPDIR: uid 65534 must be able to reach the directory.
        let tag = UUID().uuidString.prefix(8)
        root = "/tmp/agentron-safety-\(tag)"
        outside = "/tmp/agentron-safety-\(tag)-outside"
        for directory in [root, outside] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o755)
        }
        try #require(chown(root, nobody, nogroup) == 0, "chown \(root): \(String(cString: strerror(errno)))")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: outside)
    }

    func path(_ name: String) -> String { root + "/" + name }
    func outsidePath(_ name: String) -> String { outside + "/" + name }

    /// A root-owned file outside the user's directory, the kind a planted link aims at.
    func rootFile(_ name: String, _ text: String) throws -> String {
        let path = outsidePath(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        return path
    }

    func link(_ name: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(atPath: path(name), withDestinationPath: destination)
        lchown(path(name), nobody, nogroup)
    }
}

private let logger = Logger(label: "registrar-safety-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func server(_ name: String) -> RegisteredServer {
    RegisteredServer(
        name: name, engine: .vllm, endpoint: "http://127.0.0.1:8001", model: name, apiKey: nil, status: "ready")
}

private func owner(_ path: String) -> (uid: uid_t, gid: gid_t)? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return (info.st_uid, info.st_gid)
}

private func exists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Runs `sync` and waits at most `seconds` for it: false when it had not returned by then
/// (a daemon stuck on a FIFO), in which case `unblock` runs so the stuck call can end.
private func syncReturns(
    _ registrar: Registrar, _ servers: [RegisteredServer], within seconds: Double, unblock: () -> Void = {}
) async -> Bool {
    let done = Flag()
    let task = Task {
        await registrar.sync(servers)
        done.set()
    }
    let deadline = Date().addingTimeInterval(seconds)
    while !done.isSet, Date() < deadline {
        try? await Task.sleep(for: .milliseconds(20))
    }
    let returned = done.isSet
    if !returned {
        unblock()
        await task.value
    }
    return returned
}

/// Opens the FIFO for writing and closes it: a reader blocked in open or read gets EOF.
private func release(fifo path: String) {
    let fd = open(path, O_WRONLY | O_NONBLOCK)
    if fd >= 0 { close(fd) }
}

@Suite(.serialized, .timeLimit(.minutes(1)))
struct RegistrarSafetyTests {
    /// (a) `<file>.lock -> /anywhere`: the old open(O_CREAT) followed it and root created
    /// the file at the other end.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aPlantedLockLinkIsNotFollowed() async throws {
        let home = try UserDirectory()
        let target = home.outsidePath("created-by-root")
        try home.link("providers.json.lock", to: target)
        let registrar = Registrar(config: RegistrarConfig(providersPath: home.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(!exists(target), "root created the file the lock link points at")
        let error = try #require(await registrar.status().targets.first?.error)
        #expect(error.contains("providers.json.lock is a symbolic link"), "\(error)")
        #expect(!exists(home.path("providers.json")), "nothing written without the lock")
    }

    /// (b) `openclaw.json -> a root-owned file elsewhere`: the old pass resolved the link
    /// and rewrote the root-owned file.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aLinkToSomeoneElsesFileIsLeftUntouched() async throws {
        let home = try UserDirectory()
        let text = "{\n  \"models\": {\n    \"providers\": {}\n  }\n}\n"
        let victim = try home.rootFile("root.json", text)
        try home.link("openclaw.json", to: victim)
        let config = RegistrarConfig(
            providersPath: home.path("providers.json"), openClawPath: home.path("openclaw.json"))
        let registrar = Registrar(config: config, logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: victim)) == Data(text.utf8), "the link's target was rewritten")
        #expect(owner(victim)?.uid == 0)
        let targets = await registrar.status().targets
        let openClaw = try #require(targets.first { $0.kind == ProviderTarget.openClaw })
        let error = try #require(openClaw.error)
        #expect(
            error.contains("is a link to \(victim), owned by uid 0, not by the directory's owner uid 65534"), "\(error)"
        )
        #expect(try String(contentsOfFile: home.outsidePath("root.json"), encoding: .utf8) == text)
        // The other target is unaffected.
        #expect(targets.first { $0.kind == ProviderTarget.agentron }?.error == nil)
        #expect(owner(home.path("providers.json"))?.uid == nobody)
    }

    /// (c) A FIFO in place of the file: the old blocking open waited for a writer forever.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aFIFOInPlaceOfTheFileDoesNotBlock() async throws {
        let home = try UserDirectory()
        let fifo = home.path("openclaw.json")
        try #require(mkfifo(fifo, 0o644) == 0)
        lchown(fifo, nobody, nogroup)
        let config = RegistrarConfig(providersPath: home.path("providers.json"), openClawPath: fifo)
        let registrar = Registrar(config: config, logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5, unblock: { release(fifo: fifo) }))
        let openClaw = try #require(await registrar.status().targets.first { $0.kind == ProviderTarget.openClaw })
        let error = try #require(openClaw.error)
        #expect(error.contains("it is a FIFO, not a regular file"), "\(error)")
    }

    /// (c) A link to /dev/zero: the old read appended zeros until the daemon ran out of memory.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aLinkToDevZeroDoesNotExhaustMemory() async throws {
        let home = try UserDirectory()
        try home.link("openclaw.json", to: "/dev/zero")
        let config = RegistrarConfig(
            providersPath: home.path("providers.json"), openClawPath: home.path("openclaw.json"))
        let registrar = Registrar(config: config, logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        let openClaw = try #require(await registrar.status().targets.first { $0.kind == ProviderTarget.openClaw })
        let error = try #require(openClaw.error)
        #expect(error.contains("/dev/zero"), "\(error)")
    }

    /// (c) The same link where root owns the directory (no identity switch): the read
    /// itself refuses a device.
    /// A root-owned directory inside a user's (an older agentron made `~/.openclaw` so):
    /// its owner can swap it for a link at any moment, so it is written as that user too,
    /// never as root (review of issue #10).
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aRootDirectoryInsideAUsersIsWrittenAsTheUser() async throws {
        let home = try UserDirectory()
        let inner = home.path("dot-openclaw")
        try FileManager.default.createDirectory(atPath: inner, withIntermediateDirectories: true)
        chmod(inner, 0o755)
        let registrar = Registrar(config: RegistrarConfig(providersPath: inner + "/providers.json"), logger: logger)
        defer { Task { await registrar.stop() } }
        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(!exists(inner + "/providers.json"), "root wrote into a directory its user could have swapped")
        // As the user the lock cannot be created there (EACCES, then the read-only open
        // finds no file): reported, nothing written.
        let error = try #require(await registrar.status().targets.first?.error)
        #expect(error.contains("providers.json.lock"), "\(error)")
        #expect(!exists(inner + "/providers.json.lock"), "root created the lock there")
    }

    @Test func aLinkToDevZeroInTheDaemonsOwnDirectoryIsRefused() async throws {
        let directory = NSTemporaryDirectory() + "agentron-safety-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/openclaw.json", withDestinationPath: "/dev/zero")
        let config = RegistrarConfig(
            providersPath: directory + "/providers.json", openClawPath: directory + "/openclaw.json")
        let registrar = Registrar(config: config, logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        let openClaw = try #require(await registrar.status().targets.first { $0.kind == ProviderTarget.openClaw })
        let error = try #require(openClaw.error)
        #expect(
            error
                == "cannot read /dev/zero: it is a character device, not a regular file; left untouched: replace it with a regular file"
        )
    }

    /// (d) What root creates in a user's directory is the user's: the file, the lock file
    /// and every missing directory on the way.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func whatIsCreatedInAUsersDirectoryIsTheirs() async throws {
        let home = try UserDirectory()
        // agentron's own file: OpenClaw's is never created (docs/providers.md).
        let file = home.path(".config/agentron/providers.json")
        let config = RegistrarConfig(providersPath: file)
        let registrar = Registrar(config: config, logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(await registrar.status().targets.allSatisfy { $0.error == nil })
        for path in [home.path(".config"), home.path(".config/agentron"), file, file + ".lock"] {
            let found = owner(path)
            #expect(found?.uid == nobody && found?.gid == nogroup, "\(path): \(String(describing: found))")
        }
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o7777 == 0o600)
        // The thread's identity is back to root afterwards: root can still write where
        // nobody cannot.
        let rootOnlyFile = home.outsidePath("after")
        #expect(FileManager.default.createFile(atPath: rootOnlyFile, contents: Data()))
    }

    /// (d) An app's existing file stays the app's, in the app's directory and in root's.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func anAppsFileStaysTheApps() async throws {
        let home = try UserDirectory()
        let inHome = home.path("providers.json")
        let inRootDir = home.outsidePath("providers.json")
        for path in [inHome, inRootDir] {
            try Data("{\"providers\": []}\n".utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o640)
            chown(path, nobody, nogroup)
            let registrar = Registrar(config: RegistrarConfig(providersPath: path), logger: logger)
            #expect(await syncReturns(registrar, [server("a")], within: 5))
            await registrar.stop()
            #expect(await registrar.status().targets.first?.error == nil)
            let found = owner(path)
            #expect(found?.uid == nobody && found?.gid == nogroup, "\(path): \(String(describing: found))")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("\"managedBy\": \"agentron\""))
        }
    }

    /// A root-owned file in the user's directory (left by an older agentron, or by sudo):
    /// replacing it as the user would change its owner, so it is reported, not touched.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func anotherUsersFileInTheDirectoryIsReported() async throws {
        let home = try UserDirectory()
        let text = "{\"providers\": []}\n"
        let file = home.path("providers.json")
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o644)
        let registrar = Registrar(config: RegistrarConfig(providersPath: file), logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text)
        #expect(owner(file)?.uid == 0)
        let error = try #require(await registrar.status().targets.first?.error)
        #expect(
            error
                == "\(file) is owned by uid 0, not by the directory's owner uid 65534; left untouched: chown it to uid 65534 for agentron to keep it up to date"
        )
    }

    /// (e) A hard link to a root-owned file planted under the temp file's name: the old
    /// open(O_CREAT|O_TRUNC) of the predictable name truncated and rewrote that file.
    @Test(.enabled(if: isRoot, Comment(rawValue: rootOnly)))
    func aPlantedTempFileIsNotFollowed() async throws {
        let home = try UserDirectory()
        let text = "root's own file\n"
        let victim = try home.rootFile("victim", text)
        // The name the daemon used before: predictable from its pid.
        let planted = home.path(".providers.json.agentron-\(getpid()).tmp")
        try #require(link(victim, planted) == 0, "link: \(String(cString: strerror(errno)))")
        let registrar = Registrar(config: RegistrarConfig(providersPath: home.path("providers.json")), logger: logger)
        defer { Task { await registrar.stop() } }

        #expect(await syncReturns(registrar, [server("a")], within: 5))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == text, "the planted link's file was rewritten")
        var info = stat()
        #expect(stat(victim, &info) == 0 && info.st_mode & 0o7777 == 0o644 && info.st_uid == 0)
        #expect(await registrar.status().targets.first?.error == nil)
        #expect(owner(home.path("providers.json"))?.uid == nobody)
    }
}

/// FileIO's own guards, which hold for any caller and need no root.
@Suite(.timeLimit(.minutes(1)))
struct FileIOSafetyTests {
    private func directory() throws -> String {
        let path = NSTemporaryDirectory() + "agentron-fileio-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func readRefusesWhatIsNotARegularFile() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/fifo"
        try #require(mkfifo(fifo, 0o644) == 0)
        for (path, kind) in [(fifo, "a FIFO"), ("/dev/zero", "a character device"), (dir, "a directory")] {
            let error = try #require(throws: FileIO.Failure.self) { try FileIO.read(path) }
            #expect(
                error.description
                    == "cannot read \(path): it is \(kind), not a regular file; left untouched: replace it with a regular file"
            )
        }
    }

    @Test func readStopsPastTheLimit() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/big"
        try Data(repeating: 0x20, count: 1000).write(to: URL(fileURLWithPath: file))
        #expect(try FileIO.read(file, limit: 1000)?.bytes.count == 1000)
        let error = try #require(throws: FileIO.Failure.self) { try FileIO.read(file, limit: 999) }
        #expect(error.description.contains("larger than 999 bytes"))
        // A file that says size 0 and is not: only limit + 1 bytes are read.
        let proc = try #require(throws: FileIO.Failure.self) { try FileIO.read("/proc/self/maps", limit: 16) }
        #expect(proc.code == EFBIG)
    }

    /// A planted file or link under the temp file's name is never opened: the write takes
    /// another name and the planted one is left as it was.
    @Test func aTakenTempNameIsSkippedNotOpened() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/victim"
        try Data("victim\n".utf8).write(to: URL(fileURLWithPath: victim))
        try #require(link(victim, dir + "/.target.agentron-first.tmp") == 0)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/.target.agentron-second.tmp", withDestinationPath: dir + "/elsewhere")
        var names = ["first", "second", "third"].makeIterator()
        try FileIO.writeAtomically(
            Array("new\n".utf8), to: dir + "/target", mode: 0o600, owner: nil, suffix: { names.next() ?? "more" })
        #expect(try String(contentsOfFile: dir + "/target", encoding: .utf8) == "new\n")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "victim\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/elsewhere"))
        let names2 = try Set(FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(names2 == ["victim", "target", ".target.agentron-first.tmp", ".target.agentron-second.tmp"])
    }

    @Test func tempNamesAreUnpredictable() {
        let a = FileIO.unpredictableSuffix()
        let b = FileIO.unpredictableSuffix()
        #expect(a != b)
        #expect(a.hasPrefix("\(getpid())-") && a.count == "\(getpid())-".count + 16)
    }
}
