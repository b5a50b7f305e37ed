import Glibc
import Testing

@testable import AgentronProcess

/// Issue #10: each auto port is handed out once, from outside the kernel's ephemeral range.
struct PortTableTests {
    @Test func concurrentClaimsNeverShareAPort() async {
        let table = PortTable(range: 31000...31400)
        let ports = await withTaskGroup(of: Int?.self) { group in
            for index in 0..<200 {
                group.addTask { table.claim(for: "server-\(index)", host: "127.0.0.1", previous: nil) }
            }
            return await group.reduce(into: [Int?]()) { $0.append($1) }
        }
        let claimed = ports.compactMap { $0 }
        #expect(claimed.count == 200)
        #expect(Set(claimed).count == 200, "a port handed out twice")
        #expect(claimed.allSatisfy { (31000...31400).contains($0) })
    }

    @Test func aServerKeepsItsPortUnlessItWasLost() {
        let table = PortTable(range: 31500...31600)
        let first = table.claim(for: "a", host: "127.0.0.1", previous: nil)
        #expect(first != nil)
        #expect(table.claim(for: "a", host: "127.0.0.1", previous: first) == first)
        let moved = table.claim(for: "a", host: "127.0.0.1", previous: first, avoiding: first)
        #expect(moved != nil && moved != first)
        #expect(table.holder(of: moved ?? 0) == "a")
        #expect(first.flatMap(table.holder(of:)) == nil, "the lost port is given back")
        table.release(server: "a")
        #expect(table.holder(of: moved ?? 0) == nil)
    }

    /// An ephemeral range reaching either end (`1024 65535` is a common tuning) must not
    /// trap (a reversed range does) and must leave a usable range.
    @Test(arguments: [[1024, 65535], [1, 65535], [32768, 60999], [1024, 2000], [60000, 65535], [30000, 30000]])
    func everyEphemeralRangeGivesAUsableRange(_ bounds: [Int]) {
        let ephemeral = bounds[0]...bounds[1]
        let range = PortTable.range(outside: ephemeral)
        #expect(range.count >= 100)
        #expect(range.lowerBound >= 1 && range.upperBound <= 65535)
        if ephemeral.count < 60000 { #expect(!range.overlaps(ephemeral)) }
    }

    @Test func theDefaultRangeAvoidsTheEphemeralOne() {
        let range = PortTable.range(environment: [:])
        let text = readSmallFile("/proc/sys/net/ipv4/ip_local_port_range") ?? ""
        let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        if numbers.count == 2 {
            #expect(!range.overlaps(numbers[0]...numbers[1]), "\(range) overlaps the ephemeral \(numbers)")
        }
        #expect(PortTable.range(environment: [PortTable.rangeVariable: "30000-30009"]) == 30000...30009)
        #expect(PortTable.range(environment: [PortTable.rangeVariable: "9-1"]) != 9...9)
    }

}

/// The readiness check compares listeners with the address a probe connects to (review of
/// issue #10: a stranger on `::1` must count when the probe of `localhost` can reach it).
struct ListenAddressTests {
    @Test func addressesAreWrittenAsTheKernelPrintsThem() throws {
        #expect(try #require(ListenAddress.v4("127.0.0.1")).hex == "0100007F")
        #expect(try #require(ListenAddress.v6("::1")).hex == "00000000000000000000000001000000")
    }

    @Test func whatAProbeReaches() throws {
        let loopback = try #require(ListenAddress.v4("127.0.0.1"))
        let other = try #require(ListenAddress.v4("127.0.0.2"))
        #expect(loopback.reaches(loopback))
        #expect(ListenAddress.anyV4.reaches(loopback))
        #expect(ListenAddress.anyV6.reaches(loopback), "a dual-stack :: listener takes IPv4 too")
        #expect(ListenAddress.v4Mapped(loopback).reaches(loopback))
        #expect(!other.reaches(loopback))
        #expect(ListenAddress.targets(for: "localhost").count == 2)
        #expect(ListenAddress.targets(for: "0.0.0.0") == [loopback])
        #expect(ListenAddress.targets(for: "example.internal").isEmpty, "a name: every listener counts")
    }

    @Test func aListenerOfOursOnThePortIsFoundAndAnotherAddressIsNot() throws {
        let listener = try #require(TCPListen(host: "127.0.0.1"))
        defer { close(listener.fd) }
        let mine = Ports.ownership(ofPort: listener.port, host: "127.0.0.1", check: .processTree) { [getpid()] }
        #expect(mine == .ours)
        let nobody = Ports.ownership(ofPort: listener.port, host: "127.0.0.2", check: .processTree) { [getpid()] }
        #expect(nobody == .nobody, "a listener on another address is not what the probe reaches")
        if case .foreign = Ports.ownership(
            ofPort: listener.port, host: "127.0.0.1", check: .processTree, members: { [] })
        {
        } else {
            Issue.record("a listener outside the tree is foreign")
        }
        #expect(
            Ports.ownership(ofPort: listener.port, host: "127.0.0.1", check: .user) { [] } == .ours, "our own user's")
    }

    /// The kernel's socket table over netlink and /proc/net/tcp describe the same sockets:
    /// a listener, and a connection in the states `isFree` asks about.
    @Test func netlinkAndProcAgree() throws {
        let listener = try #require(TCPListen(host: "127.0.0.1"))
        defer { close(listener.fd) }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(listener.port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        for states in [[Ports.listenState], Ports.connectionStates] {
            let viaNetlink = try #require(
                Ports.diagSockets(family: AF_INET, port: listener.port, states: Self.mask(states)))
            let viaProc = Ports.procSockets(port: listener.port, states: Set(states))
            #expect(!viaNetlink.isEmpty)
            #expect(Set(viaNetlink.map(\.inode)) == Set(viaProc.map(\.inode)))
            #expect(viaNetlink.map(\.address) == viaProc.map(\.address))
            #expect(viaNetlink.map(\.uid) == viaProc.map(\.uid))
        }
        #expect(Ports.diagSockets(family: AF_INET, port: 0, states: 0x400) == [])
    }

    static func mask(_ states: some Sequence<String>) -> UInt32 {
        states.reduce(0) { $0 | (1 << UInt32(Int($1, radix: 16)!)) }
    }
}

struct TCPListen {
    let fd: Int32
    let port: Int

    init?(host: String) {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        guard socketFD >= 0, inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(socketFD, 4) == 0 else {
            close(socketFD)
            return nil
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        fd = socketFD
        port = Int(UInt16(bigEndian: address.sin_port))
    }
}
