import Histogram
import StarlingCore

/// Jobs answered at this entry node over the last two minutes, per service, for the dashboard
/// (docs/HANDBOOK.md, "job rate window"): a count per second and a latency histogram per five
/// seconds, each a ring that the loop's clock (`nowMs`) moves on. Counted where
/// `starling_jobs_answered_total` is (docs/METRICS.md), so it shows this process's clients only.
///
/// Bounded like the metrics: at most `NodeMetrics.maxServiceLabels` services at once (more are
/// counted as `_other`); a service whose window has emptied is dropped. Histograms have one
/// significant digit (about 6 % resolution, some 1.5 KB each) and exist only for the slots
/// that saw a job. Loop-confined.
final class JobRateWindow {
    /// Complete seconds reported.
    static let seconds = 120
    /// The width of one latency slot.
    static let latencySlotMs: Int64 = 5_000
    /// Complete latency slots reported: the same two minutes.
    static let latencySlots = seconds * 1_000 / Int(latencySlotMs)
    /// Longer durations are recorded as this (µs): a minute, the metrics' top bucket.
    static let maxDurationUs: UInt64 = 60_000_000

    private var services: [String: ServiceWindow] = [:]

    /// A job of `service` was answered, `duration` after its submit.
    func record(service: ServiceName, duration: Duration, nowMs: Int64) {
        let label = label(for: service.value, nowMs: nowMs)
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        services[label, default: ServiceWindow(nowMs: nowMs)]
            .record(durationUs: min(Self.maxDurationUs, UInt64(clamping: max(1, micros))), nowMs: nowMs)
    }

    /// The window of every service with a job in it, by service; drops the empty ones.
    func snapshot(nowMs: Int64) -> [String: JobRates] {
        dropEmpty(nowMs: nowMs)
        return services.mapValues { $0.rates(nowMs: nowMs) }
    }

    private func label(for service: String, nowMs: Int64) -> String {
        if services[service] != nil { return service }
        if services.count >= NodeMetrics.maxServiceLabels { dropEmpty(nowMs: nowMs) }
        return services.count < NodeMetrics.maxServiceLabels ? service : NodeMetrics.otherService
    }

    private func dropEmpty(nowMs: Int64) {
        for (name, var window) in services {
            window.advance(to: nowMs)
            services[name] = window.isEmpty ? nil : window
        }
    }
}

/// One service's part of `/api/status`'s `jobs`: oldest first, the newest slot the last complete one.
struct JobRates: Encodable, Equatable, Sendable {
    /// Jobs answered in each of the last `JobRateWindow.seconds` complete seconds.
    var perSecond: [UInt32]
    /// The 99th percentile of their durations (ms) in each of the last complete five-second
    /// slots; nil for a slot without a job.
    var p99Ms: [Double?]

    private enum CodingKeys: String, CodingKey {
        case perSecond = "per_second"
        case p99Ms = "p99_ms"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(perSecond, forKey: .perSecond)
        // Explicit nulls: the page draws a gap where a slot had no job.
        var slots = c.nestedUnkeyedContainer(forKey: .p99Ms)
        for p99 in p99Ms {
            if let p99 { try slots.encode(p99) } else { try slots.encodeNil() }
        }
    }
}

/// The rings of one service. Each holds one slot more than it reports: the current, incomplete one.
private struct ServiceWindow {
    private var counts: [UInt32]
    private var histograms: [Histogram<UInt32>?]
    /// The second (`nowMs / 1000`) and latency slot the rings were last moved to.
    private var second: Int64
    private var slot: Int64

    init(nowMs: Int64) {
        counts = Array(repeating: 0, count: JobRateWindow.seconds + 1)
        histograms = Array(repeating: nil, count: JobRateWindow.latencySlots + 1)
        second = nowMs / 1_000
        slot = nowMs / JobRateWindow.latencySlotMs
    }

    var isEmpty: Bool { counts.allSatisfy { $0 == 0 } && histograms.allSatisfy { $0 == nil } }

    mutating func record(durationUs: UInt64, nowMs: Int64) {
        advance(to: nowMs)
        counts[ring(second, counts.count)] &+= 1
        let slotIndex = ring(slot, histograms.count)
        if histograms[slotIndex] == nil {
            histograms[slotIndex] = Histogram(
                highestTrackableValue: JobRateWindow.maxDurationUs, numberOfSignificantValueDigits: .one)
        }
        histograms[slotIndex]?.record(durationUs)
    }

    /// Clears the slots the clock has moved past since the last call (all of them after a long pause).
    mutating func advance(to nowMs: Int64) {
        let nowSecond = nowMs / 1_000
        if nowSecond > second {
            for passed in (second + 1)...min(nowSecond, second + Int64(counts.count)) {
                counts[ring(passed, counts.count)] = 0
            }
            second = nowSecond
        }
        let nowSlot = nowMs / JobRateWindow.latencySlotMs
        if nowSlot > slot {
            for passed in (slot + 1)...min(nowSlot, slot + Int64(histograms.count)) {
                histograms[ring(passed, histograms.count)] = nil
            }
            slot = nowSlot
        }
    }

    func rates(nowMs: Int64) -> JobRates {
        var moved = self
        moved.advance(to: nowMs)
        let perSecond = (1...JobRateWindow.seconds).reversed().map { back in
            moved.counts[ring(moved.second - Int64(back), moved.counts.count)]
        }
        let p99Ms = (1...JobRateWindow.latencySlots).reversed().map { back -> Double? in
            guard let histogram = moved.histograms[ring(moved.slot - Int64(back), moved.histograms.count)],
                  histogram.totalCount > 0 else { return nil }
            return (Double(histogram.valueAtPercentile(99.0)) / 10).rounded() / 100
        }
        return JobRates(perSecond: perSecond, p99Ms: p99Ms)
    }
}

/// The slot of a ring of `size` that time `index` falls in; never negative, so a slot from before
/// the clock's start (a process younger than the window) is a valid, empty one.
private func ring(_ index: Int64, _ size: Int) -> Int {
    let remainder = Int(index % Int64(size))
    return remainder < 0 ? remainder + size : remainder
}
