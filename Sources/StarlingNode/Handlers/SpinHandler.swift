#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore
import StarlingUV

/// The `spin` built-in: the payload is decimal microseconds (0...timeout, whitespace ignored) of
/// CPU time to burn, measured on the burning thread's own CPU clock. It runs on libuv's thread
/// pool, never on the loop thread, and answers with the text `spun N us`. Under CPU contention the
/// wall time grows, so a spin can time out; it then stops within about a microsecond.
final class SpinHandler: JobHandler {
    private let loop: EventLoop
    private let timeoutMs: Int64

    init(loop: EventLoop, timeoutMs: Int64) {
        self.loop = loop
        self.timeoutMs = timeoutMs
    }

    func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        let maximumUs = timeoutMs * 1000
        guard let spinUs = DecimalPayload.parse(payload, maximum: maximumUs) else {
            let reason = "spin: payload must be decimal microseconds in 0...\(maximumUs)"
            return ImmediateJob(loop: loop, outcome: .failed(reason), completion: completion)
        }
        return BackgroundJob(loop: loop, name: "spin", timeoutMs: timeoutMs, body: { stop in
            Self.burn(microseconds: spinUs, stop: stop)
        }, completion: completion)
    }

    /// Runs on a pool thread.
    private static func burn(microseconds: Int64, stop: StopFlag) -> JobOutcome {
        let budgetNs = microseconds * 1000
        let startNs = threadCPUTimeNs()
        while threadCPUTimeNs() - startNs < budgetNs {
            if stop.isRaised { return .failed("spin: stopped") }
        }
        return .succeeded(Array("spun \(microseconds) us".utf8))
    }

    private static func threadCPUTimeNs() -> Int64 {
        var now = timespec()
        // Cannot fail: the clock exists on Linux and macOS and `now` is valid.
        _ = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
