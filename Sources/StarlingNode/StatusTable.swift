import StarlingCore

/// `starling status` as a table, in the spirit of `serf members`:
///
/// ```
/// ID         SERVICE  STATUS             EPOCH  PRI  RUNNING/CAP  BACKLOG  ADDRESS          LAST HEARD
/// 5b6c7d8e*  echo     primary            3      0    1/4          0        127.0.0.1:7946   0ms
/// 11223344   echo     standby            3      0    0/4          0        127.0.0.1:40211  12ms
/// ```
///
/// Rows are sorted by service, then status (primary, to-become-primary, standby, joining), then
/// id; the reporting process's row is marked with `*`. Rejected-input counters, the scaler and a
/// note on agent rows, when present, follow the table.
public enum StatusTable {
    public static let headers = [
        "ID", "SERVICE", "STATUS", "EPOCH", "PRI", "RUNNING/CAP", "BACKLOG", "ADDRESS", "LAST HEARD",
    ]

    public static func render(_ report: StatusReport) -> String {
        let rows = sorted(report.members).map { entry in
            [
                entry.id.short + (entry.id == report.selfID ? "*" : ""),
                entry.service.value,
                entry.status.description + (entry.id == report.scaler ? " (scaler)" : ""),
                String(entry.epoch),
                String(entry.priority),
                "\(entry.workload.running)/\(entry.workload.capacity)",
                String(entry.workload.backlog),
                printable(entry.address),
                duration(ms: entry.lastHeardMs),
            ]
        }
        var notes: [String] = []
        if !report.rejected.isEmpty {
            let counts = report.rejected.sorted { $0.key < $1.key }.map { "\(printable($0.key))=\($0.value)" }
            notes.append("rejected: " + counts.joined(separator: " "))
        }
        if let scaler = report.scaler {
            notes.append("scaler: \(scaler.short)")
        }
        if report.members.contains(where: { $0.service == .agent }) {
            notes.append(agentNote)
        }
        let lines = table([headers] + rows) + (notes.isEmpty ? [] : [""] + notes)
        return lines.joined(separator: "\n") + "\n"
    }

    /// An agent runs no jobs itself: its workload columns count the workers on its host.
    public static let agentNote = "agent rows: RUNNING/CAP = workers running on its host / its --max-workers"

    /// The table's row order: service, then status with primary first, then id (older first).
    public static func sorted(_ members: [StatusReport.Entry]) -> [StatusReport.Entry] {
        members.sorted { a, b in
            if a.service != b.service { return a.service < b.service }
            if a.status != b.status { return statusRank(a.status) < statusRank(b.status) }
            return a.id < b.id
        }
    }

    /// `12ms` below a second, `1.5s` below a minute, then `3m07s`, `2h05m`.
    public static func duration(ms: Int64) -> String {
        switch ms {
        case ..<1000: return "\(max(0, ms))ms"
        case ..<60_000: return "\(ms / 1000).\(ms % 1000 / 100)s"
        case ..<3_600_000: return "\(ms / 60_000)m" + twoDigits(ms / 1000 % 60) + "s"
        default: return "\(ms / 3_600_000)h" + twoDigits(ms / 60_000 % 60) + "m"
        }
    }

    private static func twoDigits(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }

    private static func statusRank(_ status: MemberStatus) -> Int {
        switch status {
        case .primary: 0
        case .toBecomePrimary: 1
        case .standby: 2
        case .joining: 3
        }
    }

    /// Decoded text comes from the network: no control characters in the terminal.
    private static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }

    /// Left-aligned columns two spaces apart, no trailing spaces.
    private static func table(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            var line = ""
            for (column, cell) in row.enumerated() {
                line += cell
                if column < row.count - 1 { line += String(repeating: " ", count: widths[column] - cell.count + 2) }
            }
            return line
        }
    }
}
