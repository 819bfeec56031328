import Dispatch
import Glibc
import StarlingUV
import Synchronization
import Testing

@Suite struct BackgroundWorkTests {
    /// libuv's pool size: 4 unless `UV_THREADPOOL_SIZE` says otherwise.
    private static var poolSize: Int {
        getenv("UV_THREADPOOL_SIZE").flatMap { Int(String(cString: $0)) }.map { min(max($0, 1), 1024) } ?? 4
    }

    @Test func runsOffTheLoopThreadAndCompletesOnIt() throws {
        try withLoop { loop in
            let loopThread = pthread_self()
            var results: [Result<Bool, UVError>] = []
            var completedOnLoopThread = false
            let work = try BackgroundWork(loop: loop, work: { pthread_equal(pthread_self(), loopThread) == 0 }) {
                completedOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0
                results.append($0)
            }
            #expect(results.isEmpty, "completion ran inside init")
            try drive(loop, "work completion") { !results.isEmpty }
            #expect(completedOnLoopThread)
            #expect(results.count == 1)
            #expect((try? results.first?.get()) == true, "work ran on the loop thread")
            #expect(work.isFinished)
            #expect(work.cancel() == false, "finished work cannot be cancelled")
        }
    }

    @Test func manyWorksEachCompleteOnceWithTheirValue() throws {
        try withLoop { loop in
            var values: [Int: Int] = [:]
            var works: [BackgroundWork] = []
            for index in 0..<200 {
                works.append(try BackgroundWork(loop: loop, work: { index * index }) { result in
                    values[index, default: 0] += 1
                    let value = try? result.get()
                    #expect(value == index * index)
                })
            }
            try drive(loop, "200 completions") { values.count == 200 }
            #expect(values.values.allSatisfy { $0 == 1 })
            #expect(works.allSatisfy { $0.isFinished })
        }
    }

    @Test func cancellingQueuedWorkReportsECANCELEDAndNeverRunsIt() throws {
        try withLoop { loop in
            // Occupy every pool thread until released, so the last work stays queued.
            let gate = DispatchSemaphore(value: 0)
            let ran = Atomic<Bool>(false)
            var blockersDone = 0
            var blockers: [BackgroundWork] = []
            for _ in 0..<Self.poolSize {
                blockers.append(try BackgroundWork(loop: loop, work: { gate.wait() }) { _ in blockersDone += 1 })
            }
            var results: [Result<Void, UVError>] = []
            let queued = try BackgroundWork(loop: loop, work: { ran.store(true, ordering: .relaxed) }) { results.append($0) }
            let cancelled = queued.cancel()
            for _ in blockers { gate.signal() }
            #expect(cancelled)
            #expect(results.isEmpty, "completion ran inside cancel()")
            try drive(loop, "cancelled work and blockers") { !results.isEmpty && blockersDone == blockers.count }
            #expect(results.count == 1)
            if case .failure(let error) = results.first { #expect(error.name == "ECANCELED") } else {
                Issue.record("expected ECANCELED, got \(results)")
            }
            let didRun = ran.load(ordering: .relaxed)
            #expect(!didRun)
            #expect(!queued.cancel())
        }
    }
}
