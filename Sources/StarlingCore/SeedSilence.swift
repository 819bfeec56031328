/// Whether a process started with `--join` seeds has heard from anyone yet, and when to warn that
/// it has not (docs/HANDBOOK.md, "seed silence"): seeds that never answer (a wrong address, a
/// firewall, a different cluster key) would otherwise leave it a cluster of one without a word.
///
/// No warning without seeds, nor once any peer has been in the record (the process joined
/// something, and a later departure is membership's business). Otherwise the first warning comes
/// `firstWarningAfterMs` after the start, then one every `repeatEveryMs`. Pure: the caller passes
/// the time and the record's size.
public struct SeedSilence: Hashable, Sendable {
    /// The seeds as `--join` named them (numbers or host names).
    public let seeds: [String]
    public let firstWarningAfterMs: Int64
    public let repeatEveryMs: Int64
    private var nextWarningMs: Int64?
    /// Whether any peer has been heard since the start.
    public private(set) var heardFromPeers = false

    /// The defaults scale with the heartbeat interval: 20 intervals (at least 2 s) before the
    /// first warning, well past admission, and at most one every 10 s (or 100 intervals) after.
    public init(seeds: [String], intervalMs: Int64) {
        self.seeds = seeds
        firstWarningAfterMs = max(2_000, 20 * intervalMs)
        repeatEveryMs = max(10_000, 100 * intervalMs)
    }

    /// Called every interval with the number of peers in the record; true when a warning is due now.
    public mutating func tick(nowMs: Int64, peersInRecord: Int) -> Bool {
        guard !seeds.isEmpty, !heardFromPeers else { return false }
        guard peersInRecord == 0 else {
            heardFromPeers = true
            return false
        }
        guard let next = nextWarningMs else {
            nextWarningMs = nowMs + firstWarningAfterMs
            return false
        }
        guard nowMs >= next else { return false }
        nextWarningMs = nowMs + repeatEveryMs
        return true
    }
}
