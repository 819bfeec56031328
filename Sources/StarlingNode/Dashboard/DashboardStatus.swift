import Foundation
import StarlingCore

/// The body of `GET /api/status` (README, "Watching it over HTTP"): the `STATUS` record, every key
/// of `StatusReport` as it is (so `StatusReport(json:)` and `starling status` read it), plus what
/// the dashboard draws besides the record:
///
/// ```json
/// {"members":[…],"rejected":{},"scaler":"…","self":"…",
///  "jobs":{"echo":{"per_second":[0,…,412],"p99_ms":[null,…,1.9]}},
///  "events":[{"at_unix_ms":1796000000000,"kind":"failover","service":"echo","member":"…",
///             "detail":"primary … -> … (epoch 2)","duration_ms":480}],
///  "now_unix_ms":1796000000123}
/// ```
///
/// Every part is bounded (the record, `JobRateWindow`, `EventTimeline`), so it is cheap to make
/// on the loop at each poll.
struct DashboardStatus: Encodable {
    var report: StatusReport
    /// `JobRateWindow.snapshot`: services with a job answered here in the last two minutes.
    var jobs: [String: JobRates]
    /// `EventTimeline.events`, oldest first.
    var events: [ClusterEvent]
    /// This process's wall clock, so the page dates events without trusting the browser's clock.
    var nowUnixMs: UInt64

    private enum CodingKeys: String, CodingKey {
        case jobs, events
        case nowUnixMs = "now_unix_ms"
    }

    func encode(to encoder: any Encoder) throws {
        // The record's keys first, then ours in the same object: a keyed container asked for
        // again at the same level is the same one (as a subclass shares its superclass's).
        try report.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(jobs, forKey: .jobs)
        try c.encode(events, forKey: .events)
        try c.encode(nowUnixMs, forKey: .nowUnixMs)
    }

    /// Compact JSON, keys sorted, as `StatusReport.jsonBytes` writes the record.
    func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}
