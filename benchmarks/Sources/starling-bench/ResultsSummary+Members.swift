import Foundation

extension ResultsSummary {
    /// The `members` section of RESULTS.md, and the lines it adds to "Targets missed" (issue 13's
    /// targets for 150 idle workers, held against the worst run).
    func membersSection() -> (text: String, missed: [String]) {
        guard let first = membersReports.first else { return ("", []) }
        let settings = first.settings
        var text = "## Membership: idle workers (Starling only)\n\n"
        text += "N idle `starling worker` processes of \(settings.services) service types (worker i of type i mod "
            + "\(settings.services)), heartbeat interval \(settings.intervalMs) ms, the first the seed and every other "
            + "joining it; no jobs. *Converged*: every worker's record (`STATUS`) holds all N, admitted, with one and the "
            + "same primary per service, counted from the last worker's start (the bench polls every 200 ms, then once "
            + "more over every worker to confirm; it stops polling before measuring). "
            + String(format: "Then, for %.0f s: *CPU* is utime + stime of all N workers (`/proc/<pid>/stat`), in %% of one "
                     + "core (the machine has %d × 100 %%); ", settings.measureS, first.machine.nproc)
        text += settings.namespace == "private"
            ? "*datagrams* are the `Udp` OutDatagrams and InDatagrams of a network namespace the bench made for the "
                + "workers alone (`/proc/<pid>/net/snmp`), divided by N and by the seconds, so no other process's UDP counts. "
            : "*datagrams* are the machine's `Udp` OutDatagrams and InDatagrams (`/proc/<pid>/net/snmp`, no namespace of "
                + "their own could be made), divided by N and by the seconds: other processes' UDP counts too, so these "
                + "are upper bounds. "
        text += "With `--kill-primary`, the primary of one service is then killed with -9 and up to three survivors of "
            + "its service and one of each other service are polled: *seen dead* is when every one of them has dropped it "
            + "from its record, *new primary* when those of its service all name the same new one. A size that does not "
            + "converge within \(Int(settings.convergeTimeoutS)) s is reported as such (and measured anyway, unconverged); "
            + "its kill is skipped.\n\n"
        text += "| run | workers | started in | converged after | CPU, all workers | datagrams sent / worker / s "
            + "| received / worker / s | receive-buffer drops | primary's kill: seen dead | new primary |\n"
        text += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for (run, report) in membersReports.enumerated() {
            for point in report.points {
                let converged = point.convergedS.map { String(format: "%.2f s", $0) }
                    ?? "not within \(Int(report.settings.convergeTimeoutS)) s"
                let kill = point.primaryKill
                text += "| \(run + 1) | \(point.workers) | " + String(format: "%.1f s", point.startS) + " | \(converged) | "
                    + String(format: "%.1f %%", point.cpuPercent) + " | "
                    + (point.datagramsSentPerWorkerPerS.map { String(format: "%.1f", $0) } ?? "–") + " | "
                    + (point.datagramsReceivedPerWorkerPerS.map { String(format: "%.1f", $0) } ?? "–") + " | "
                    + (point.receiveBufferErrors.map { "\($0)" } ?? "–") + " | "
                    + (kill.map { $0.seenDeadMs.map { "\($0) ms" } ?? "not within \($0.timeoutMs) ms" } ?? "–") + " | "
                    + (kill.map { $0.newPrimaryMs.map { "\($0) ms" } ?? "none within \($0.timeoutMs) ms" } ?? "–") + " |\n"
            }
        }
        let notes = membersReports.flatMap { report in
            report.points.filter { $0.convergedS == nil || $0.alive < $0.workers }
                .map { "\($0.workers) workers: \($0.convergeNote); \($0.alive) of \($0.workers) alive at the end of the measurement" }
        }
        if !notes.isEmpty { text += "\n" + notes.map { "- \($0)\n" }.joined() }

        // Issue 13's targets, for the largest size run (150 in benchmarks/run), worst run.
        let largest = membersReports.flatMap(\.points).map(\.workers).max() ?? 0
        let points = membersReports.compactMap { $0.points.first { $0.workers == largest } }
        /// (target, figure, met (nil: not measured), how far off when missed)
        var rows: [(String, String, Bool?, String)] = []
        let name = "`members` at \(largest) idle workers"
        let timeout = Int(settings.convergeTimeoutS)
        let slowest = points.map { $0.convergedS ?? .infinity }.max() ?? .infinity
        rows.append(("converged within 20 s", slowest.isFinite ? String(format: "%.2f s", slowest) : "not converged within \(timeout) s",
                     slowest <= 20, slowest.isFinite ? String(format: "%.1f s over", slowest - 20) : "more than \(timeout - 20) s over"))
        let cpu = points.map(\.cpuPercent).max() ?? 0
        rows.append(("all workers ≤ 25 % CPU (of \(first.machine.nproc * 100) %)", String(format: "%.1f %%", cpu), cpu <= 25,
                     String(format: "%.1f× the target", cpu / 25)))
        let sent = points.compactMap(\.datagramsSentPerWorkerPerS).max()
        if let sent {
            rows.append(("≤ 100 datagrams sent per worker per second", String(format: "%.1f", sent), sent <= 100,
                         String(format: "%.1f× the target", sent / 100)))
        }
        let kills = points.compactMap(\.primaryKill)
        if kills.count < points.count {
            rows.append(("a primary's kill -9 seen within 600 ms", "not measured: not converged in every run", nil, ""))
        } else if !kills.isEmpty {
            let times = kills.map(\.seenDeadMs)
            let worst = times.contains(nil) ? nil : times.compactMap { $0 }.max()
            rows.append(("a primary's kill -9 seen within 600 ms", worst.map { "\($0) ms" } ?? "not seen within \(kills[0].timeoutMs) ms",
                         (worst ?? Int.max) <= 600, worst.map { "\($0 - 600) ms over" } ?? "not seen at all"))
        }
        text += "\n| target (issue 13) | \(points.count == 1 ? "this run" : "worst of \(points.count) runs") | |\n| --- | ---: | --- |\n"
        for row in rows { text += "| \(row.0) | \(row.1) | \(row.2.map { $0 ? "met" : "**missed**" } ?? "not measured") |\n" }
        let missed = rows.filter { $0.2 == false }.map { "\(name), \($0.0) (issue 13): \($0.1) (\($0.3))" }
        text += "\nHow it scales: per service one hub (its primary) heartbeats its service, every other member only "
            + "the hub and the deputy, and hubs and deputies each other across services (docs/HANDBOOK.md, \"Membership\"), "
            + "so each member sends about 3 datagrams per interval whatever N. The CPU left is per process more than per "
            + "datagram: each of the N wakes at least once an interval (a standby ticks when its primary's heartbeat "
            + "arrives, docs/HANDBOOK.md, \"interval\"), and the profile (2026-12-07) put about a third of it in the "
            + "kernel (context switches, UDP sends and receives), the rest in the tick's and the heartbeat's work and "
            + "the Swift runtime; the three hubs and three deputies, which hear their whole service each interval, "
            + "take about a quarter of it.\n\n"
        return (text, missed)
    }
}
