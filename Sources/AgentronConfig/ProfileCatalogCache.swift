#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A catalog read once and read again only when a profile file on its search path was
/// added, removed, renamed or written: a long-lived reader (the daemon's gateway lists the
/// profiles on every state change) then pays a `stat` per file rather than a YAML parse.
public struct ProfileCatalogCache: Sendable {
    /// What identifies one file's content without reading it.
    struct FileStamp: Sendable, Equatable {
        var path: String
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int64
        var modifiedNanoseconds: Int64
    }

    public let catalog: ProfileCatalog
    private var stamps: [FileStamp]?
    private var cached: [ProfileCatalog.Entry] = []
    /// How many times the files were read (for the tests).
    public private(set) var reads = 0

    public init(_ catalog: ProfileCatalog) {
        self.catalog = catalog
    }

    /// The catalog's entries, as `ProfileCatalog.entries()` gives them.
    public mutating func entries() -> [ProfileCatalog.Entry] {
        // Stamped before the read: a file written during it shows a new stamp next time.
        let now = Self.stamps(of: catalog)
        if now != stamps {
            cached = catalog.entries()
            stamps = now
            reads += 1
        }
        return cached
    }

    static func stamps(of catalog: ProfileCatalog) -> [FileStamp] {
        var out: [FileStamp] = []
        for (directory, _) in catalog.searchPath {
            for (path, info) in ProfileCatalog.profileFileStats(in: directory) {
                out.append(
                    FileStamp(
                        path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                        modified: Int64(info.st_mtim.tv_sec), modifiedNanoseconds: Int64(info.st_mtim.tv_nsec)))
            }
        }
        return out
    }
}
