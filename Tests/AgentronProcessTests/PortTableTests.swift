import AgentronProcess
import Testing

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
