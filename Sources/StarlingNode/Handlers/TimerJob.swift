import StarlingCore
import StarlingUV

/// A job that is nothing but its timer: its outcome is decided when it starts and delivered when
/// the timer fires (sleep). An outcome due at once is an `ImmediateJob`, which needs no timer.
final class TimerJob: RunningJob {
    private let end: JobEnd

    /// Delivers `outcome` after `afterMs` (0: from the next loop iteration).
    init(loop: EventLoop, outcome: JobOutcome, afterMs: UInt64 = 0, completion: @escaping (JobOutcome) -> Void) {
        let end = JobEnd(loop: loop, completion: completion)
        end.decide(outcome)
        end.after(ms: afterMs) { [end] in end.deliver() }
        self.end = end
    }

    func cancel() {
        guard !end.isDelivered else { return }
        end.cancel()
        end.finishSoon()
    }
}
