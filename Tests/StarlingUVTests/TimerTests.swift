import StarlingUV
import Testing

@Suite struct TimerTests {
    @Test func repeatingTimerFiresNTimesThenCloses() throws {
        try withLoop { loop in
            let timer = try Timer(loop: loop)
            defer { timer.close() }
            var fired = 0
            try timer.start(afterMs: 1, repeatMs: 1) {
                fired += 1
                if fired == 5 { timer.close() }  // closing from inside its own callback
            }
            try drive(loop, "5 ticks") { fired == 5 }
            // One more bounded round must not fire a closed timer.
            _ = try loop.run(until: { fired > 5 }, timeoutMs: 20)
            #expect(fired == 5)
            #expect(!timer.isActive)
        }
    }

    @Test func stoppedTimerCanBeRestarted() throws {
        try withLoop { loop in
            let timer = try Timer(loop: loop)
            defer { timer.close() }
            var first = 0, second = 0
            try timer.start(afterMs: 1) { first += 1 }
            try drive(loop, "one-shot") { first == 1 }
            #expect(!timer.isActive)
            try timer.start(afterMs: 1) { second += 1 }
            try drive(loop, "restart") { second == 1 }
            #expect(first == 1)
        }
    }

    @Test func runUntilReportsTheDeadline() throws {
        try withLoop { loop in
            loop.updateTime()
            let start = loop.now
            let met = try loop.run(until: { false }, timeoutMs: 30)
            #expect(!met)
            loop.updateTime()
            #expect(loop.now - start >= 30)
        }
    }

    @Test func usingAClosedTimerThrowsEBADF() throws {
        try withLoop { loop in
            let timer = try Timer(loop: loop)
            timer.close()
            timer.close()  // idempotent
            timer.stop()  // no effect
            #expect(caught { () throws(UVError) in try timer.start(afterMs: 1) {} }?.name == "EBADF")
        }
    }

    @Test func closingTheLoopWithAnOpenHandleFailsWithEBUSY() throws {
        let loop = try EventLoop()
        let timer = try Timer(loop: loop)
        #expect(caught { () throws(UVError) in try loop.close() }?.name == "EBUSY")
        timer.close()
        try loop.close()
        try loop.close()  // idempotent after success
    }
}
