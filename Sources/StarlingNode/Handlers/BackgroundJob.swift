import StarlingCore
import StarlingUV
import Synchronization

/// Raised by the loop thread to ask work on a pool thread to stop early; the work polls it.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() {
        raised.store(true, ordering: .relaxed)
    }

    var isRaised: Bool { raised.load(ordering: .relaxed) }
}

/// A job whose work runs on libuv's thread pool (`BackgroundWork`) while the loop only waits.
///
/// On timeout or cancel the outcome is decided at once and the work is told to stop (or cancelled
/// before it starts), but the completion runs only when the work has returned: once a job has
/// completed, nothing of it is left running.
final class BackgroundJob: RunningJob {
    private let end: JobEnd
    private let stop = StopFlag()
    private var work: BackgroundWork?

    /// Starts `body` on the pool; `name` prefixes failures that are not the body's own.
    init(
        loop: EventLoop, name: String, timeoutMs: Int64,
        body: @escaping @Sendable (StopFlag) -> JobOutcome, completion: @escaping (JobOutcome) -> Void
    ) {
        end = JobEnd(loop: loop, completion: completion)
        let stop = stop
        do {
            work = try BackgroundWork(loop: loop, work: { body(stop) }) { [end] result in
                switch result {
                case .success(let outcome): end.decide(outcome)
                case .failure(let error): end.decide(.failed("\(name): \(error)"))
                }
                end.deliver()
            }
        } catch {
            end.finishSoon(.failed("\(name): cannot queue work: \(error)"))
            return
        }
        end.after(ms: UInt64(timeoutMs)) { [end, stop, work] in
            end.decide(.failed(timedOut(afterMs: timeoutMs)))
            stop.raise()
            work?.cancel()
        }
    }

    func cancel() {
        guard !end.isDelivered else { return }
        end.cancel()
        stop.raise()
        // Delivery follows from the after-work callback, also when this cancels queued work.
        work?.cancel()
    }
}
