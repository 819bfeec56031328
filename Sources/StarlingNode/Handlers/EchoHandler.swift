import StarlingCore
import StarlingUV

/// The `echo` built-in: answers with the payload, from the loop's next idle phase.
final class EchoHandler: JobHandler {
    private let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
    }

    func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        ImmediateJob(loop: loop, outcome: .succeeded(payload), completion: completion)
    }
}
