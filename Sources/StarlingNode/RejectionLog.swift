import Logging

/// Counts rejected input by reason and logs it without letting a flood fill the log.
///
/// Every rejection is counted (the counters go into `STATUS`). At most `burst` lines are logged
/// per `windowMs`; the rest of the window is summarised in one line when the next window opens.
public struct RejectionLog {
    /// Rejections so far, by reason (e.g. `bad_magic`, `client_bad_request`).
    public private(set) var counts: [String: UInt64] = [:]
    /// Distinct reasons are bounded too, whatever the input: extra ones are folded into `other`.
    public static let maxReasons = 64

    private let burst: Int
    private let windowMs: Int64
    private var windowStartMs: Int64?
    private var loggedInWindow = 0
    private var suppressedInWindow = 0

    public init(burst: Int = 10, windowMs: Int64 = 1_000) {
        precondition(burst >= 1 && windowMs >= 1)
        self.burst = burst
        self.windowMs = windowMs
    }

    /// Counts one rejection and logs it at `level` unless this window's budget is spent.
    public mutating func record(
        _ reason: String, detail: @autoclosure () -> String, nowMs: Int64, level: Logger.Level, logger: Logger
    ) {
        let key = count(reason)
        if windowStartMs.map({ nowMs &- $0 >= windowMs }) ?? true {
            if suppressedInWindow > 0 {
                logger.notice("suppressed \(suppressedInWindow) more rejection log lines", metadata: ["total": "\(total)"])
            }
            windowStartMs = nowMs
            loggedInWindow = 0
            suppressedInWindow = 0
        }
        guard loggedInWindow < burst else {
            suppressedInWindow += 1
            return
        }
        loggedInWindow += 1
        logger.log(level: level, "rejected: \(detail())", metadata: ["reason": "\(key)", "count": "\(counts[key]!)"])
    }

    /// Counts one rejection without logging it (for input whose log lines are summarised
    /// elsewhere); returns the reason it was counted under.
    @discardableResult
    public mutating func count(_ reason: String) -> String {
        let key = counts[reason] != nil || counts.count < Self.maxReasons ? reason : "other"
        counts[key, default: 0] &+= 1
        return key
    }

    /// All rejections counted so far.
    public var total: UInt64 { counts.values.reduce(0, &+) }
}
