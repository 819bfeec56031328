import Foundation
import StarlingUV
import Synchronization
import Testing

/// Work handed from other threads to the loop, the way a client's mailbox does it.
private final class Handoff: Sendable {
    let queued = Mutex<[Int]>([])
}

@Suite struct LoopWakeupTests {
    @Test func wakesFromOtherThreadsDeliverEverythingCoalesced() throws {
        try withLoop { loop in
            let handoff = Handoff()
            var received: [Int] = []
            var calls = 0
            let wakeup = try LoopWakeup(loop: loop) {
                calls += 1
                received += handoff.queued.withLock { queued in
                    defer { queued = [] }
                    return queued
                }
            }
            defer { wakeup.close() }

            let waker = wakeup.waker
            let perThread = 500
            for thread in 0..<4 {
                Thread {
                    for i in 0..<perThread {
                        handoff.queued.withLock { $0.append(thread * perThread + i) }
                        #expect(waker.wake())
                    }
                }.start()
            }
            try drive(loop, "all handed-over items") { received.count == 4 * perThread }
            #expect(Set(received) == Set(0..<(4 * perThread)))
            #expect(calls >= 1 && calls <= 4 * perThread)
        }
    }

    @Test func wakeFromTheLoopThreadRunsOnTheNextIteration() throws {
        try withLoop { loop in
            var calls = 0
            let wakeup = try LoopWakeup(loop: loop) { calls += 1 }
            defer { wakeup.close() }
            #expect(wakeup.waker.wake())
            #expect(calls == 0)
            try drive(loop, "wake delivered") { calls == 1 }
        }
    }

    @Test func wakerIsHarmlessAfterClose() throws {
        let waker: LoopWakeup.Waker = try {
            var result: LoopWakeup.Waker?
            try withLoop { loop in
                var calls = 0
                let wakeup = try LoopWakeup(loop: loop) { calls += 1 }
                let waker = wakeup.waker
                #expect(waker.isOpen)
                #expect(waker.wake())
                wakeup.close()
                wakeup.close()  // idempotent
                #expect(!waker.isOpen)
                #expect(!waker.wake())
                for _ in 0..<3 { loop.runOnce(nowait: true) }
                #expect(calls == 0, "a wake pending at close is dropped")
                result = waker
            }
            return result!
        }()
        // The loop is closed and the handle freed: still nothing happens.
        #expect(!waker.wake())
    }
}
