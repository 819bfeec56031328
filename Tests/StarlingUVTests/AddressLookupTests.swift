import Dispatch
import Glibc
import StarlingUV
import Testing

/// Names here resolve from /etc/hosts (`localhost`) or not at all: no test waits on a name server.
@Suite struct AddressLookupTests {
    @Test func localhostResolvesOnThePoolAndCompletesOnceOnTheLoopThread() throws {
        try withLoop { loop in
            let loopThread = pthread_self()
            var results: [Result<[SocketAddress], UVError>] = []
            var completedOnLoopThread = false
            let lookup = try AddressLookup(loop: loop, host: "localhost", port: 7946, family: .ipv4) {
                completedOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0
                results.append($0)
            }
            #expect(results.isEmpty, "completion ran inside init")
            try drive(loop, "lookup completion") { !results.isEmpty }
            #expect(results.count == 1)
            #expect(completedOnLoopThread)
            let addresses = try #require(try? results.first?.get())
            #expect(addresses == [try SocketAddress(ip: "127.0.0.1", port: 7946)])
            #expect(lookup.isFinished)
            #expect(!lookup.cancel(), "a finished lookup cannot be cancelled")
        }
    }

    @Test func aNumericHostComesBackAsItself() throws {
        try withLoop { loop in
            var result: Result<[SocketAddress], UVError>?
            _ = try AddressLookup(loop: loop, host: "::1", port: 1, family: .any) { result = $0 }
            try drive(loop, "lookup completion") { result != nil }
            #expect((try? result?.get()) == [try SocketAddress(ip: "::1", port: 1)])
        }
    }

    @Test(arguments: ["", "a\0b", String(repeating: "a", count: 255)])
    func malformedHostsThrowEINVALAndNeverCallBack(_ host: String) throws {
        try withLoop { loop in
            var called = false
            let error = caught { () throws(UVError) in
                _ = try AddressLookup(loop: loop, host: host, port: 1) { _ in called = true }
            }
            #expect(error?.name == "EINVAL")
            _ = loop.runOnce(nowait: true)
            #expect(!called)
        }
    }

    @Test func cancellingAQueuedLookupReportsCancelledOnce() throws {
        try withLoop { loop in
            // Occupy every pool thread until released, so the lookup stays queued.
            let poolSize = getenv("UV_THREADPOOL_SIZE").flatMap { Int(String(cString: $0)) }.map { min(max($0, 1), 1024) } ?? 4
            let gate = DispatchSemaphore(value: 0)
            var blockersDone = 0
            var blockers: [BackgroundWork] = []
            for _ in 0..<poolSize {
                blockers.append(try BackgroundWork(loop: loop, work: { gate.wait() }) { _ in blockersDone += 1 })
            }
            var results: [Result<[SocketAddress], UVError>] = []
            let lookup = try AddressLookup(loop: loop, host: "localhost", port: 1) { results.append($0) }
            let cancelled = lookup.cancel()
            for _ in blockers { gate.signal() }
            #expect(cancelled)
            #expect(results.isEmpty, "completion ran inside cancel()")
            try drive(loop, "cancelled lookup and blockers") { !results.isEmpty && blockersDone == blockers.count }
            #expect(results.count == 1)
            if case .failure(let error) = results.first { #expect(error.name == "EAI_CANCELED") } else {
                Issue.record("expected EAI_CANCELED, got \(results)")
            }
            #expect(!lookup.cancel())
        }
    }
}
