import Foundation
import StarlingCore

/// The demo's closing report: jobs by kind, the kills and how fast the cluster recovered, and the
/// worker counts over time. `passed` says whether every job was answered OK and both kills were
/// survived.
public struct DemoSummary {
    public let counts: [String: DemoJobCounts]
    public let total: DemoJobCounts
    /// Sorted submit-to-answer times per service, and of all jobs under "total".
    public let latenciesMs: [String: [Double]]
    public let kills: [DemoMonitor.Kill]
    public let snapshots: [(label: String, counts: [ServiceName: Int])]
    public let peak: [ServiceName: Int]
    public let services: [ServiceName]
    public let problems: [String]

    public init(
        tally: DemoTally, kills: [DemoMonitor.Kill], snapshots: [(label: String, counts: [ServiceName: Int])],
        peak: [ServiceName: Int], services: [ServiceName], problems: [String]
    ) {
        counts = tally.counts
        total = tally.total
        var latencies = tally.latenciesMs.mapValues { $0.sorted() }
        latencies["total"] = latencies.values.flatMap { $0 }.sorted()
        latenciesMs = latencies
        self.kills = kills
        self.snapshots = snapshots
        self.peak = peak
        self.services = services
        self.problems = problems
    }

    public var passed: Bool {
        total.submitted > 0 && total.lost == 0 && total.failed == 0 && total.errors == 0 && total.wrong == 0
            && kills.count == 2 && kills.allSatisfy(\.isSettled) && problems.isEmpty
    }

    /// One sentence for the last line.
    public var verdict: String {
        var parts = ["\(total.submitted) jobs submitted, \(total.ok) answered OK, lost \(total.lost)"]
        if total.failed + total.errors + total.wrong > 0 {
            parts.append("\(total.failed) FAIL, \(total.errors) ERR, \(total.wrong) wrong results")
        }
        if let failover = kills.first(where: \.waitsForFailover)?.failover {
            parts.append("failover in \(DemoMonitor.ms(failover))")
        } else {
            parts.append("no failover seen")
        }
        parts += problems
        return parts.joined(separator: "; ")
    }

    public func render() -> String {
        var lines: [String] = []
        let header = ["jobs", "submitted", "answered", "OK", "FAIL", "ERR", "wrong", "lost", "retried", "median", "p99", "max"]
        var rows = counts.keys.sorted().map { row($0, counts[$0]!) }
        rows.append(row("total", total))
        lines += table([header] + rows, rightAligned: 1...11)
        lines.append("  lost = submitted - answered (must be 0); retried = BUSY/UNAVAILABLE answers resubmitted with the")
        lines.append("  same key; median, p99, max: time from submit to answer (sleep jobs also wait in their primary's queue)")
        lines.append("")

        for kill in kills {
            var text = "kill -9 of the echo \(kill.what) \(kill.id.short) (pid \(kill.pid), epoch \(kill.epoch)) at \(kill.elapsedLabel):"
            if kill.waitsForFailover {
                text += kill.failover.map { " a new primary with a higher epoch after \(DemoMonitor.ms($0))," } ?? " NO new primary seen,"
            }
            text += kill.detected.map { " presumed dead after \(DemoMonitor.ms($0))," } ?? " never left the record,"
            text += kill.replaced.map { " replaced by the scaler after \(DemoMonitor.ms($0))" } ?? " NOT replaced"
            lines.append("  " + text)
        }
        if kills.contains(where: \.waitsForFailover) {
            lines.append("  (failover: from the kill until an agent's STATUS shows the new primary; most of it is the")
            lines.append("   350 ms of silence since the last heartbeat after which a peer is presumed dead)")
        }
        lines.append("")

        let columns = snapshots.map(\.label) + ["peak"]
        var workerRows = [["workers"] + columns]
        for service in [ServiceName.agent] + services.filter({ $0 != .agent }) {
            var cells = [service == .agent ? "agents" : service.value]
            cells += snapshots.map { String($0.counts[service] ?? 0) }
            cells.append(service == .agent ? "" : String(peak[service] ?? 0))
            workerRows.append(cells)
        }
        lines += table(workerRows, rightAligned: 1...columns.count)
        lines.append("  (members of each service in an agent's STATUS; a killed worker counts until it is presumed dead)")
        if !problems.isEmpty {
            lines.append("")
            lines += problems.map { "  problem: \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    private func row(_ name: String, _ c: DemoJobCounts) -> [String] {
        let times = latenciesMs[name] ?? []
        return [name, "\(c.submitted)", "\(c.answered)", "\(c.ok)", "\(c.failed)", "\(c.errors)", "\(c.wrong)", "\(c.lost)",
                "\(c.retried)", percentile(times, 0.5), percentile(times, 0.99), times.last.map(ms) ?? "-"]
    }

    private func percentile(_ sorted: [Double], _ p: Double) -> String {
        guard !sorted.isEmpty else { return "-" }
        return ms(sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))])
    }

    private func ms(_ value: Double) -> String {
        value < 10 ? String(format: "%.1f ms", value) : String(format: "%.0f ms", value)
    }

    /// Columns two spaces apart, indented by two; columns in `rightAligned` are right-aligned.
    private func table(_ rows: [[String]], rightAligned: ClosedRange<Int>) -> [String] {
        let widths = (0..<(rows.map(\.count).max() ?? 0)).map { column in
            rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
        }
        return rows.map { row in
            let cells = row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? pad + cell : cell + pad
            }
            var line = "  " + cells.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }
}
