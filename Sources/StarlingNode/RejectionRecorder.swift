import Logging
import StarlingUV

/// One `RejectionLog` shared by the parts of a process, with the loop's clock and the process's
/// logger, so that heartbeats, connections and clients all count into the one set of counters that
/// `STATUS` reports. Loop-confined.
final class RejectionRecorder {
    private var log: RejectionLog
    private let loop: EventLoop
    private let logger: Logger

    init(loop: EventLoop, logger: Logger, burst: Int = 10) {
        log = RejectionLog(burst: burst)
        self.loop = loop
        self.logger = logger
    }

    /// Rejections so far, by reason.
    var counts: [String: UInt64] { log.counts }

    /// Counts one rejection and logs it at `level`, within the log's rate limit.
    func record(_ reason: String, detail: @autoclosure () -> String, level: Logger.Level) {
        log.record(reason, detail: detail(), nowMs: Int64(clamping: loop.now), level: level, logger: logger)
    }

    /// Counts one rejection without a log line (the caller logs a summary of its own).
    func count(_ reason: String) {
        log.count(reason)
    }
}
