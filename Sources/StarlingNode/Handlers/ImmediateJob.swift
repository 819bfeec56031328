import StarlingCore
import StarlingUV

/// A job whose outcome is known when it starts (echo, small sha256, a rejected payload): it is
/// delivered from the loop's next idle phase (`EventLoop.soon`), never inside `start`, and needs
/// no handle of its own. Loop-confined.
final class ImmediateJob: RunningJob {
    private var completion: ((JobOutcome) -> Void)?
    private let outcome: JobOutcome
    private var isCancelled = false

    /// Delivers `outcome` soon; the loop's queue keeps the job alive until then.
    init(loop: EventLoop, outcome: JobOutcome, completion: @escaping (JobOutcome) -> Void) {
        self.outcome = outcome
        self.completion = completion
        loop.soon { [self] in deliver() }
    }

    /// The completion still runs once, with `.failed("cancelled")`, unless it already ran.
    func cancel() {
        isCancelled = true
    }

    private func deliver() {
        guard let completion else { return }
        self.completion = nil
        completion(isCancelled ? .failed("cancelled") : outcome)
    }
}
