import StarlingCore
import Testing

@Suite struct StartBackoffTests {
    @Test func quickExitsDoubleTheWaitUpToTheMaximum() {
        var backoff = StartBackoff()
        var now: Int64 = 1_000
        var delays: [Int64] = []
        for _ in 0..<10 {
            let started = now
            now += 200  // exits 200 ms after its start
            delays.append(backoff.exited(startedMs: started, nowMs: now) ?? -1)
            #expect(backoff.wait(nowMs: now) == delays.last)
            now += delays.last!
            #expect(backoff.wait(nowMs: now) == 0)
        }
        #expect(delays == [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000])
        #expect(backoff.failures == 10)
    }

    @Test func aWorkerThatRanAWhileClearsTheCount() {
        var backoff = StartBackoff()
        #expect(backoff.wait(nowMs: 0) == 0)
        #expect(backoff.exited(startedMs: 0, nowMs: 100) == 500)
        #expect(backoff.exited(startedMs: 600, nowMs: 700) == 1_000)
        #expect(backoff.wait(nowMs: 1_200) == 500)
        // Up for the whole quick-exit window: it started fine, whatever ended it later.
        #expect(backoff.exited(startedMs: 2_000, nowMs: 2_000 + backoff.policy.quickExitMs) == nil)
        #expect(backoff.failures == 0)
        #expect(backoff.wait(nowMs: 7_000) == 0)
        #expect(backoff.exited(startedMs: 8_000, nowMs: 8_100) == 500)
    }
}
