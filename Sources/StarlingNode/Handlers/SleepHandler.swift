import StarlingCore
import StarlingUV

/// The `sleep` built-in: the payload is decimal milliseconds (0...timeout, whitespace ignored); the
/// job waits that long on a libuv timer, never blocking the loop, and answers with the text
/// `slept N ms`. Because the delay may not exceed the timeout, a sleep job never times out.
final class SleepHandler: JobHandler {
    private let loop: EventLoop
    private let timeoutMs: Int64

    init(loop: EventLoop, timeoutMs: Int64) {
        self.loop = loop
        self.timeoutMs = timeoutMs
    }

    func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        guard let delayMs = DecimalPayload.parse(payload, maximum: timeoutMs) else {
            let reason = "sleep: payload must be decimal milliseconds in 0...\(timeoutMs)"
            return ImmediateJob(loop: loop, outcome: .failed(reason), completion: completion)
        }
        return TimerJob(loop: loop, outcome: .succeeded(Array("slept \(delayMs) ms".utf8)),
                        afterMs: UInt64(delayMs), completion: completion)
    }
}
