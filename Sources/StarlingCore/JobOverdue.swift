/// When a job handed to a peer, with no answer from there yet, is sent again (docs/HANDBOOK.md,
/// "overdue"). Links report the failures they see (`JobEngine.linkLost`), but not every loss is
/// seen: a connection can die half-open, a frame can reach a process that ignores it. So the router
/// sends a dispatch again, and the entry node a forward, once the answer is later than the job
/// could legitimately take; the far end answers from its caches or attaches, so nothing runs twice.
/// Each later round waits twice as long, so a job that is merely slow costs a few resends at most.
public struct JobOverdue: Hashable, Sendable {
    /// Beyond the job's own time: a handler's termination grace (2 s for commands), transit and
    /// scheduling hiccups.
    public var allowanceMs: Int64 = 3_000
    /// The longest wait between two resends of one job.
    public static let maxWaitMs: Int64 = 3_600_000

    public init(allowanceMs: Int64 = 3_000) {
        self.allowanceMs = allowanceMs
    }

    /// A dispatch is overdue once the job could have waited behind one job at its executor (the
    /// router sends at most one job per slot ahead) and then run to its timeout.
    public func dispatchMs(jobTimeoutMs: Int64, round: Int) -> Int64 {
        doubled(2 * jobTimeoutMs + allowanceMs, round: round)
    }

    /// A forward is overdue once the router itself would have dispatched again, and then some.
    /// Jobs that wait in a long queue at the primary are forwarded again too: the primary attaches
    /// them to what it holds.
    public func forwardMs(jobTimeoutMs: Int64, round: Int) -> Int64 {
        doubled(2 * jobTimeoutMs + 2 * allowanceMs, round: round)
    }

    private func doubled(_ first: Int64, round: Int) -> Int64 {
        var wait = max(1, first)
        for _ in 0..<min(round, 32) where wait < Self.maxWaitMs { wait *= 2 }
        return min(wait, Self.maxWaitMs)
    }
}
