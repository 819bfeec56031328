import StarlingCore
import Testing

@Suite struct SeedSilenceTests {
    /// As `--join` named it.
    private let seed = "127.0.0.1:7946"

    /// The times (ms) at which warnings come in `untilMs`, ticking every 100 ms.
    private func warnings(_ silence: inout SeedSilence, peers: (Int64) -> Int = { _ in 0 }, untilMs: Int64) -> [Int64] {
        stride(from: 0, through: untilMs, by: 100).filter { silence.tick(nowMs: $0, peersInRecord: peers($0)) }
    }

    @Test func seedsThatNeverAnswerWarnAfterTwoSecondsThenEveryTen() {
        var silence = SeedSilence(seeds: [seed], intervalMs: 100)
        #expect(warnings(&silence, untilMs: 35_000) == [2_000, 12_000, 22_000, 32_000])
        #expect(!silence.heardFromPeers)
    }

    @Test func aPeerHeardOnceEndsTheWarningsForGood() {
        var silence = SeedSilence(seeds: [seed], intervalMs: 100)
        #expect(warnings(&silence, peers: { $0 >= 5_000 && $0 < 6_000 ? 1 : 0 }, untilMs: 60_000) == [2_000])
        #expect(silence.heardFromPeers)
    }

    @Test func noSeedsNoWarningAndSlowIntervalsWaitLonger() {
        var alone = SeedSilence(seeds: [], intervalMs: 100)
        #expect(warnings(&alone, untilMs: 60_000).isEmpty)
        var slow = SeedSilence(seeds: [seed], intervalMs: 1_000)
        #expect(warnings(&slow, untilMs: 250_000) == [20_000, 120_000, 220_000])
    }
}
