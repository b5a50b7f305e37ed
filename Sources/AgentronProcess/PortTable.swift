import Glibc
import Synchronization

/// Every port this daemon has handed to an auto-port server (issue #10).
///
/// Picking a port by binding port 0 and closing the socket gave two servers one port: the
/// engine binds seconds or minutes later, and meanwhile the kernel hands the same port to
/// the next pick or to an outgoing connection (a probe). So ports are picked from a range
/// outside the kernel's ephemeral range (which outgoing connections draw from), and a port
/// handed out stays taken in this table until its server picks another or is removed.
public final class PortTable: Sendable {
    /// Where auto ports come from.
    public let range: ClosedRange<Int>
    private let held = Mutex<[Int: String]>([:])

    /// `AGENTRON_AUTO_PORTS=LOW-HIGH` sets the range (the firewall allows only some, say).
    public static let rangeVariable = "AGENTRON_AUTO_PORTS"
    /// Used when the ephemeral range leaves no room below or above it.
    static let fallbackRange = 20000...29999

    public init(range: ClosedRange<Int>) {
        self.range = range
    }

    /// The range from the environment, else the largest stretch of 1024...65535 outside
    /// `/proc/sys/net/ipv4/ip_local_port_range` (usually 20000...32767 below 32768-60999).
    public static func range(environment: [String: String]) -> ClosedRange<Int> {
        if let text = environment[rangeVariable], let parsed = parseRange(text) { return parsed }
        return range(
            outside: readSmallFile("/proc/sys/net/ipv4/ip_local_port_range", limit: 256).flatMap(parseEphemeral))
    }

    /// The largest stretch of 1024...65535 outside `ephemeral` (at least 100 ports), else
    /// the fallback.
    public static func range(outside ephemeral: ClosedRange<Int>?) -> ClosedRange<Int> {
        guard let ephemeral else { return fallbackRange }
        // Bounds are checked before a range is formed: `a...b` with a > b traps, and
        // `1024 65535` (an ephemeral range reaching either end) is a common tuning.
        var candidates: [ClosedRange<Int>] = []
        let belowHigh = ephemeral.lowerBound - 1
        let belowLow = max(1024, min(20000, belowHigh))
        if belowLow <= belowHigh { candidates.append(belowLow...belowHigh) }
        let aboveLow = ephemeral.upperBound + 1
        if aboveLow <= 65535 { candidates.append(aboveLow...65535) }
        guard let best = candidates.max(by: { $0.count < $1.count }), best.count >= 100 else { return fallbackRange }
        return best
    }

    /// `30000-30999` → 30000...30999; nil when malformed or outside 1...65535.
    static func parseRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", maxSplits: 1).map { Int(String($0).trimmingSpaces) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], 1 <= low, low <= high, high <= 65535 else {
            return nil
        }
        return low...high
    }

    /// "32768\t60999\n" → 32768...60999.
    static func parseEphemeral(_ text: String) -> ClosedRange<Int>? {
        let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard numbers.count == 2, 1 <= numbers[0], numbers[0] <= numbers[1], numbers[1] <= 65535 else { return nil }
        return numbers[0]...numbers[1]
    }

    /// A port for `server` on `host`: its previous one when that is still free, else a
    /// free one in the range held by no other server. Nil when the range is exhausted.
    public func claim(for server: String, host: String, previous: Int?, avoiding lost: Int? = nil) -> Int? {
        held.withLock { held in
            if let previous, previous != lost, held[previous] == nil || held[previous] == server,
                Ports.isFree(host: host, port: previous)
            {
                held[previous] = server
                return previous
            }
            // Start somewhere random so two daemons (a user's and the system's) with the
            // same range rarely try the same ports first.
            let count = range.count
            let start = Int.random(in: 0..<count)
            for offset in 0..<count {
                let port = range.lowerBound + (start + offset) % count
                guard held[port] == nil, port != lost, Ports.isFree(host: host, port: port) else { continue }
                for (taken, owner) in held where owner == server { held.removeValue(forKey: taken) }
                held[port] = server
                return port
            }
            return nil
        }
    }

    /// Records that `server` uses `port` (an engine re-adopted after a daemon restart).
    public func hold(_ port: Int, for server: String) {
        held.withLock { held in
            for (taken, owner) in held where owner == server { held.removeValue(forKey: taken) }
            held[port] = server
        }
    }

    /// Gives back every port `server` holds (the server was removed).
    public func release(server: String) {
        held.withLock { held in
            for (port, owner) in held where owner == server { held.removeValue(forKey: port) }
        }
    }

    /// The server holding `port`, if any.
    public func holder(of port: Int) -> String? {
        held.withLock { $0[port] }
    }
}
