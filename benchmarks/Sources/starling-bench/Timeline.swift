/// Answers per millisecond since the load started, for jobs/s over time and the longest gap
/// with no answer at all. One per slot or connection, merged at the end.
struct Timeline: Sendable {
    private(set) var perMs: [UInt32]

    init(durationS: Double) {
        perMs = Array(repeating: 0, count: max(1, Int((durationS * 1_000).rounded(.up))))
    }

    /// Counts an answer at `ns` after the start (beyond the end: the last millisecond).
    mutating func record(atNs ns: UInt64) {
        let index = min(Int(ns / 1_000_000), perMs.count - 1)
        perMs[index] &+= 1
    }

    mutating func merge(_ other: Timeline) {
        if other.perMs.count > perMs.count { perMs += Array(repeating: 0, count: other.perMs.count - perMs.count) }
        for (index, count) in other.perMs.enumerated() where count > 0 { perMs[index] &+= count }
    }

    /// Jobs/s in each bucket of `bucketMs` over [fromS, toS).
    func rates(bucketMs: Int, fromS: Double, toS: Double) -> [Double] {
        let from = max(0, Int(fromS * 1_000))
        let to = min(perMs.count, Int(toS * 1_000))
        var rates: [Double] = []
        var start = from
        while start + bucketMs <= to {
            let total = perMs[start..<start + bucketMs].reduce(0) { $0 + Int($1) }
            rates.append(Double(total) * 1_000 / Double(bucketMs))
            start += bucketMs
        }
        return rates
    }

    /// The longest run of milliseconds with no answer inside [fromS, toS), and where it began (s).
    func longestGap(fromS: Double, toS: Double) -> (ms: Int, atS: Double) {
        let from = max(0, Int(fromS * 1_000))
        let to = min(perMs.count, Int(toS * 1_000))
        var best = 0
        var bestAt = from
        var run = 0
        var runStart = from
        for index in from..<max(from, to) {
            if perMs[index] == 0 {
                if run == 0 { runStart = index }
                run += 1
                if run > best { best = run; bestAt = runStart }
            } else {
                run = 0
            }
        }
        return (best, Double(bestAt) / 1_000)
    }
}
