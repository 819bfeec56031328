import StarlingUV
import Testing

/// `EventLoop.soon`: deferred actions on the loop thread, with one shared idle handle.
@Suite struct DeferredActionsTests {
    @Test func actionsRunLaterInOrderOnce() throws {
        try withLoop { loop in
            var ran: [Int] = []
            for n in 0..<100 { loop.soon { ran.append(n) } }
            #expect(ran.isEmpty, "never inside soon()")
            // No timer or I/O is pending: the queued actions alone keep the loop alive and awake.
            try drive(loop, "100 actions") { ran.count == 100 }
            #expect(ran == Array(0..<100))
            _ = try loop.run(until: { ran.count > 100 }, timeoutMs: 20)
            #expect(ran.count == 100, "each action runs once")
        }
    }

    @Test func anActionThatQueuesItselfForeverDoesNotStarveTimers() throws {
        try withLoop { loop in
            var spins = 0
            func again() {
                spins += 1
                loop.soon(again)
            }
            loop.soon(again)
            var timerFired = false
            let timer = try Timer(loop: loop)
            defer { timer.close() }
            try timer.start(afterMs: 5) { timerFired = true }
            try drive(loop, "a timer while an action re-queues itself") { timerFired }
            #expect(spins > 0)
        }
    }

    @Test func actionsStillQueuedAtCloseAreDroppedNotRun() throws {
        let loop = try EventLoop()
        var ran = false
        loop.soon { ran = true }
        try loop.close()
        #expect(!ran)
    }
}
