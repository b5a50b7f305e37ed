#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Lookups in the system's user and group database (NSS), for the socket group the
/// system daemon gives its socket and `service install` creates.
public enum UserDatabase {
    /// The id of the group `name`; nil when the database has no such group.
    public static func groupID(named name: String) -> gid_t? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }
}
