import AgentronCore
import AgentronHTTP
import Glibc

/// A plain text table: columns padded to their widest cell, two spaces apart.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (index, cell) in cells.enumerated() {
                let isLast = index == cells.count - 1
                out += isLast ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }
            return out
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

enum Format {
    /// `4s`, `12m`, `3h`, `2d`: how long ago `unixTime` was.
    static func age(since unixTime: Double, now: Double = Double(time(nil))) -> String {
        let seconds = max(0, Int(now - unixTime))
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" }
        if seconds < 86400 { return "\(seconds / 3600)h" }
        return "\(seconds / 86400)d"
    }

    /// `12.3s` for elapsed waits.
    static func elapsed(_ duration: Duration) -> String {
        let ms = duration.wholeMilliseconds
        if ms < 60_000 { return "\(ms / 1000).\((ms % 1000) / 100)s" }
        return "\(ms / 60_000)m\((ms / 1000) % 60)s"
    }

    /// `512 MB`, `1.2 GB`: decimal units, as download tools show them.
    static func bytes(_ count: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(count) B" }
        let tenths = Int((value * 10).rounded())
        return value >= 100 ? "\(Int(value.rounded())) \(units[unit])" : "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    static func state(_ info: ServerInfo) -> String {
        info.state.rawValue
    }
}
