import Foundation

/// What the `members` scenario reports, as printed and as written with `--json`: idle workers'
/// membership cost at each cluster size.
struct MembersReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var services: Int
        var intervalMs: Int
        var measureS: Double
        var convergeTimeoutS: Double
        /// `private`: the workers ran in a network namespace of their own, so the UDP counters are
        /// theirs alone; `shared`: the machine's, other processes' datagrams included.
        var namespace: String

        enum CodingKeys: String, CodingKey {
            case services, namespace
            case intervalMs = "interval_ms"
            case measureS = "measure_s"
            case convergeTimeoutS = "converge_timeout_s"
        }
    }

    var benchmark = "members"
    var system = "starling"
    var date: String
    var machine: Machine
    var settings: Settings
    var points: [MembersPoint]
}

/// One cluster size.
struct MembersPoint: Codable, Sendable {
    var workers: Int
    /// Seconds to start every process (each printed its `listening on` line), one after another.
    var startS: Double
    /// Seconds from the last start until every worker's record held all N, admitted, with one and
    /// the same primary per service; nil if not within the timeout.
    var convergedS: Double?
    /// At the end of the wait: how many records held all N, and the smallest record.
    var convergeNote: String
    var measuredS: Double
    /// utime + stime of all workers over the measurement, in % of one core (the machine has
    /// `nproc` × 100 %).
    var cpuPercent: Double
    /// UDP datagrams the namespace sent and received, per worker per second.
    var datagramsSentPerWorkerPerS: Double?
    var datagramsReceivedPerWorkerPerS: Double?
    /// Datagrams dropped for a full receive buffer during the measurement.
    var receiveBufferErrors: UInt64?
    /// Workers still running at the end of the measurement.
    var alive: Int
    var primaryKill: PrimaryKill?

    enum CodingKeys: String, CodingKey {
        case workers, alive
        case startS = "start_s"
        case convergedS = "converged_s"
        case convergeNote = "converge_note"
        case measuredS = "measured_s"
        case cpuPercent = "cpu_percent"
        case datagramsSentPerWorkerPerS = "datagrams_sent_per_worker_per_s"
        case datagramsReceivedPerWorkerPerS = "datagrams_received_per_worker_per_s"
        case receiveBufferErrors = "receive_buffer_errors"
        case primaryKill = "primary_kill"
    }
}

/// kill -9 of one service's primary among the idle workers, watched from a sample of survivors.
struct PrimaryKill: Codable, Sendable {
    var service: String
    /// Survivors polled: some of the same service, one of each other service.
    var sampled: Int
    /// From the kill until every sampled record had dropped it; nil if not within `timeoutMs`.
    var seenDeadMs: Int?
    /// From the kill until every sampled worker of its service named one new primary.
    var newPrimaryMs: Int?
    var timeoutMs: Int
    /// Each sampled record was read about this often (the resolution of the times above).
    var pollEveryMs: Int

    enum CodingKeys: String, CodingKey {
        case service, sampled
        case seenDeadMs = "seen_dead_ms"
        case newPrimaryMs = "new_primary_ms"
        case timeoutMs = "timeout_ms"
        case pollEveryMs = "poll_every_ms"
    }
}

extension MembersReport {
    var table: String {
        var lines = ["benchmark  members (starling), \(settings.services) services, interval \(settings.intervalMs) ms, "
            + "measured \(settings.measureS) s, \(settings.namespace) network namespace",
            "machine    \(machine.nproc) CPUs, \(machine.cpuModel), Linux \(machine.kernel), load before "
            + String(format: "%.2f", machine.loadAverage1m)]
        lines.append("  N  start   converged          CPU (all)  sent/worker/s  received/worker/s  rcvbuf drops  kill: seen dead  new primary")
        for point in points {
            let converged = point.convergedS.map { String(format: "%.2f s", $0) } ?? String(format: "no (%.0f s)", settings.convergeTimeoutS)
            let drops = point.receiveBufferErrors.map { "\($0)" } ?? "–"
            let kill = point.primaryKill.map { ($0.seenDeadMs.map { "\($0) ms" } ?? "not seen", $0.newPrimaryMs.map { "\($0) ms" } ?? "none") }
            lines.append(String(format: "%3d  %5.1fs  ", point.workers, point.startS)
                + converged.padding(toLength: 17, withPad: " ", startingAt: 0)
                + String(format: "  %7.1f %%  ", point.cpuPercent)
                + (point.datagramsSentPerWorkerPerS.map { String(format: "%13.1f", $0) } ?? "            –")
                + "  " + (point.datagramsReceivedPerWorkerPerS.map { String(format: "%17.1f", $0) } ?? "                –")
                + "  " + String(repeating: " ", count: max(0, 12 - drops.count)) + drops
                + "  " + (kill.map { $0.0.padding(toLength: 15, withPad: " ", startingAt: 0) + "  " + $0.1 } ?? "–"))
            lines.append("     \(point.convergeNote); \(point.alive) of \(point.workers) alive at the end")
        }
        return lines.joined(separator: "\n")
    }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        try data.write(to: URL(fileURLWithPath: path))
    }
}
