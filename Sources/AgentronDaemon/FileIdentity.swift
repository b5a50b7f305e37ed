import AgentronConfig
import AgentronCore
import CProcessShims
import Glibc

/// The user a root daemon acts as on the filesystem while it writes into a directory that
/// belongs to someone else (a provider file in a user's home): the kernel then checks every
/// open, mkdir and rename as that user, so a link or a planted file there can make root do
/// nothing that user could not do themselves.
///
/// The switch is setfsuid/setfsgid, which is per thread: `run` takes a synchronous body,
/// so no `await` can move the work to another thread (or another task onto this one) while
/// the identity is switched.
struct FileIdentity: Equatable, Sendable {
    var uid: uid_t
    var gid: gid_t

    struct SwitchFailure: Error, CustomStringConvertible {
        var identity: FileIdentity
        var code: Int32
        var description: String {
            "cannot act as uid \(identity.uid) gid \(identity.gid) on the filesystem (setfsuid/setfsgid): "
                + "\(String(cString: strerror(code))); nothing written"
        }
    }

    /// Who to act as when writing `path`: the owner of the nearest ancestor directory that
    /// is not root's (lstat: a link there is judged by who made the link), or nil when the
    /// daemon is not root or every ancestor is root's (nothing to switch). Not just the
    /// nearest existing one: a root-owned directory inside a user's (an older agentron
    /// made `~/.openclaw` so) can be swapped for a link by that user at any moment, so it
    /// is written as the user too, and the kernel refuses what the user may not do.
    static func forWriting(_ path: String) -> FileIdentity? {
        guard geteuid() == 0 else { return nil }
        var directory = FileIO.parentDirectory(of: path)
        while true {
            var info = stat()
            if lstat(directory, &info) == 0, info.st_uid != 0 {
                return FileIdentity(uid: info.st_uid, gid: info.st_gid)
            }
            guard directory != "/", directory != "." else { return nil }
            directory = FileIO.parentDirectory(of: directory)
        }
    }

    /// Runs `body` with this thread's filesystem uid and gid switched to `identity` (when
    /// given), and switches back before returning, whatever `body` returned.
    static func run<T>(as identity: FileIdentity?, _ body: () -> T) throws(SwitchFailure) -> T {
        guard let identity else { return body() }
        var previousGid: gid_t = 0
        var previousUid: uid_t = 0
        // The gid first: once the fsuid is not 0 the thread may no longer be allowed to pick
        // any gid.
        guard agentron_switch_fsgid(identity.gid, &previousGid) == 0 else {
            let code = errno
            agentron_switch_fsgid(previousGid, nil)
            throw SwitchFailure(identity: identity, code: code)
        }
        guard agentron_switch_fsuid(identity.uid, &previousUid) == 0 else {
            let code = errno
            agentron_switch_fsuid(previousUid, nil)
            agentron_switch_fsgid(previousGid, nil)
            throw SwitchFailure(identity: identity, code: code)
        }
        defer {
            agentron_switch_fsuid(previousUid, nil)
            agentron_switch_fsgid(previousGid, nil)
        }
        return body()
    }

    /// Inside `run`: makes new files get `gid` (an existing file's group, kept on rewrite)
    /// until `run` switches back. False when the kernel refused.
    static func useGroup(_ gid: gid_t) -> Bool {
        agentron_switch_fsgid(gid, nil) == 0
    }
}
