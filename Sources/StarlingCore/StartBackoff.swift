/// How soon an agent may start another worker of a service whose workers keep exiting soon after
/// they start (docs/HANDBOOK.md, "start backoff"): a bad definition, a missing program, a broken
/// binary would otherwise be restarted as fast as the scaler asks.
///
/// An exit within `quickExitMs` of the start is a failed start; each one in a row doubles the
/// wait before the next start, from `firstDelayMs` up to `maxDelayMs`. An exit after a longer run
/// clears the count. Pure: the caller passes the times.
public struct StartBackoff: Hashable, Sendable {
    public struct Policy: Hashable, Sendable {
        /// A worker that exits sooner than this after its start failed to start.
        public var quickExitMs: Int64 = 5_000
        /// The wait after the first failed start.
        public var firstDelayMs: Int64 = 500
        /// The wait never grows beyond this.
        public var maxDelayMs: Int64 = 30_000

        public init() {}
    }

    public let policy: Policy
    /// Failed starts in a row.
    public private(set) var failures = 0
    /// No start before this time (ms, the caller's clock).
    public private(set) var notBeforeMs: Int64 = .min

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// A worker started at `startedMs` exited at `nowMs`. For a failed start, the wait before the
    /// next one (ms); nil when it ran long enough to count as started (the count is cleared).
    public mutating func exited(startedMs: Int64, nowMs: Int64) -> Int64? {
        guard nowMs - startedMs < policy.quickExitMs else {
            failures = 0
            notBeforeMs = .min
            return nil
        }
        failures += 1
        let delay = Self.delay(afterFailures: failures, policy: policy)
        notBeforeMs = nowMs + delay
        return delay
    }

    /// How long from `nowMs` until a start is allowed; 0 when it is allowed now.
    public func wait(nowMs: Int64) -> Int64 {
        notBeforeMs == .min ? 0 : max(0, notBeforeMs - nowMs)
    }

    /// `firstDelayMs` doubled for each failure after the first, at most `maxDelayMs`.
    static func delay(afterFailures failures: Int, policy: Policy) -> Int64 {
        var delay = max(0, policy.firstDelayMs)
        for _ in 1..<max(1, failures) where delay < policy.maxDelayMs {
            delay *= 2
        }
        return min(delay, policy.maxDelayMs)
    }
}
