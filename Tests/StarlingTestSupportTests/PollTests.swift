import StarlingTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PollTests {
    @Test func returnsTheFirstValueWithoutWaiting() {
        let started = ContinuousClock.now
        #expect(poll(within: .seconds(10)) { 7 } == 7)
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func asksUntilTheProbeAnswers() {
        var asked = 0
        let value = poll(within: .seconds(10), every: .milliseconds(1)) { () -> Int? in
            asked += 1
            return asked == 5 ? asked : nil
        }
        #expect(value == 5)
    }

    @Test func givesUpAtTheDeadlineAfterAskingOnceMoreThere() {
        var asked = 0
        let started = ContinuousClock.now
        let value = poll(within: .milliseconds(100), every: .milliseconds(30)) { () -> Int? in
            asked += 1
            return nil
        }
        let waited = ContinuousClock.now - started
        #expect(value == nil)
        #expect(waited >= .milliseconds(100))
        #expect(waited < .seconds(5))
        // At 0, 30, 60, 90 and at the deadline (100).
        #expect(asked >= 3)
    }

    /// A probe begun in time that ends past the deadline (its thread was not scheduled) does not
    /// end the wait: one more probe, begun after the deadline, gives the answer.
    @Test func aProbeThatOverranTheDeadlineIsFollowedByOneMore() {
        var asked = 0
        let value = poll(within: .milliseconds(20), every: .milliseconds(1)) { () -> Int? in
            asked += 1
            if asked == 1 { usleep(60_000) }
            return asked == 2 ? asked : nil
        }
        #expect(value == 2)
    }

    @Test func asyncProbesMayAwait() async {
        let asked = Atomic<Int>(0)
        // A generous deadline: blocking process tests can hold the cooperative threads for many
        // seconds on a 2-core machine, and this test is about awaiting, not about speed.
        let value = await pollAsync(within: .seconds(60), every: .milliseconds(1)) { () async -> Int? in
            await Task.yield()
            let count = asked.add(1, ordering: .relaxed).newValue
            return count == 3 ? count : nil
        }
        #expect(value == 3)
    }

    @Test func asyncGivesUpAtTheDeadline() async {
        let started = ContinuousClock.now
        let value: Int? = await pollAsync(within: .milliseconds(50)) { nil }
        #expect(value == nil)
        #expect(ContinuousClock.now - started >= .milliseconds(50))
    }
}
