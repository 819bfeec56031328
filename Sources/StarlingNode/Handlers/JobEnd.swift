import StarlingCore
import StarlingUV

/// How every job ends: one timer (its deadline, or a deferral to the next loop iteration) and a
/// completion called exactly once, always from a loop callback.
///
/// A job first decides its outcome (`decide`; the first decision wins) and delivers it when it is
/// safe to (a killed process must first be reaped, pool work must first return). `cancel()` turns
/// any outcome not yet delivered into `.failed("cancelled")`. Loop-confined.
final class JobEnd {
    private let timer: Timer
    private var completion: ((JobOutcome) -> Void)?
    private var outcome: JobOutcome?
    private var isCancelled = false

    init(loop: EventLoop, completion: @escaping (JobOutcome) -> Void) {
        do {
            timer = try Timer(loop: loop)
        } catch {
            // uv_timer_init only fills in a struct; it cannot fail on an open loop.
            preconditionFailure("cannot create a job timer: \(error)")
        }
        self.completion = completion
    }

    /// Whether the completion has run.
    var isDelivered: Bool { completion == nil }

    /// Runs `action` on the loop after `ms`, replacing whatever the timer was set to do.
    func after(ms: UInt64, _ action: @escaping () -> Void) {
        guard !isDelivered else { return }
        do {
            try timer.start(afterMs: ms, action)
        } catch {
            // The timer is open until `deliver()`, and uv_timer_start fails only on a closing handle.
            preconditionFailure("cannot start a job timer: \(error)")
        }
    }

    /// Records the outcome unless one is already decided.
    func decide(_ outcome: JobOutcome) {
        if self.outcome == nil { self.outcome = outcome }
    }

    /// Makes the outcome `.failed("cancelled")` unless it has already been delivered.
    func cancel() {
        isCancelled = true
    }

    /// Decides `outcome` (if given and nothing is decided yet) and delivers from the next loop iteration.
    func finishSoon(_ outcome: JobOutcome? = nil) {
        if let outcome { decide(outcome) }
        after(ms: 0) { [self] in deliver() }
    }

    /// Closes the timer and reports the outcome; only from a loop callback. Idempotent.
    func deliver() {
        guard let completion else { return }
        self.completion = nil
        timer.close()
        let outcome = isCancelled ? .failed("cancelled") : outcome ?? .failed("internal error: job ended undecided")
        completion(outcome)
    }
}

/// Why a job that ran out of time failed.
func timedOut(afterMs timeoutMs: Int64) -> String {
    "timed out after \(timeoutMs) ms"
}
