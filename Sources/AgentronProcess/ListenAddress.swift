import Glibc

/// A local address as /proc/net/tcp{,6} prints it, and the question the readiness check
/// asks of it: would a connection to the probe's address reach this listener?
///
/// The kernel prints each 32-bit word of the address as it sits in memory, read as a host
/// integer, in hex: 127.0.0.1 is `0100007F` on a little-endian machine. Targets are turned
/// into the same text, so no parsing of the table's form is needed.
struct ListenAddress: Equatable {
    var isV6: Bool
    var hex: String

    static let anyV4 = ListenAddress(isV6: false, hex: "00000000")
    static let anyV6 = ListenAddress(isV6: true, hex: String(repeating: "0", count: 32))

    /// Whether a connection to `target` reaches a socket listening on this address: the
    /// same address, the wildcard of its family, or (IPv4) a dual-stack `::` listener or
    /// its v4-mapped form.
    func reaches(_ target: ListenAddress) -> Bool {
        if self == target { return true }
        if target.isV6 { return self == Self.anyV6 }
        if !isV6 { return self == Self.anyV4 }
        return self == Self.anyV6 || self == Self.v4Mapped(target)
    }

    /// `::ffff:a.b.c.d` for an IPv4 target.
    static func v4Mapped(_ v4: ListenAddress) -> ListenAddress {
        ListenAddress(isV6: true, hex: "0000000000000000FFFF0000" + v4.hex)
    }

    /// The addresses a probe of `host` connects to; empty when `host` is a name other than
    /// localhost (then every listener on the port counts).
    static func targets(for host: String) -> [ListenAddress] {
        switch host {
        case "localhost": return [v4("127.0.0.1"), v6("::1")].compactMap { $0 }
        // The probe of an engine on every address goes to loopback (EngineContext.baseURL).
        case "0.0.0.0", "::": return [v4("127.0.0.1")].compactMap { $0 }
        default:
            let trimmed = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            if let address = v4(trimmed) { return [address] }
            if let address = v6(trimmed) { return [address] }
            return []
        }
    }

    static func v4(_ text: String) -> ListenAddress? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return ListenAddress(isV6: false, hex: words(withUnsafeBytes(of: address) { Array($0) }))
    }

    static func v6(_ text: String) -> ListenAddress? {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return ListenAddress(isV6: true, hex: words(withUnsafeBytes(of: address) { Array($0) }))
    }

    /// Network-order bytes → the kernel's text: each 4-byte word read as a host integer.
    static func words(_ bytes: [UInt8]) -> String {
        var text = ""
        var index = 0
        while index + 4 <= bytes.count {
            let word = bytes[index..<(index + 4)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            let digits = String(word, radix: 16, uppercase: true)
            text += String(repeating: "0", count: 8 - digits.count) + digits
            index += 4
        }
        return text
    }
}
