/// Counts of one job kind.
public struct DemoJobCounts: Equatable, Sendable {
    public var submitted = 0
    public var ok = 0
    public var failed = 0
    public var errors = 0
    /// `OK` with a result other than the expected one.
    public var wrong = 0
    /// No answer at all (the client gave up): these are lost.
    public var unanswered = 0
    /// `BUSY`/`UNAVAILABLE` answers retried with the same key (not counted as errors).
    public var retried = 0

    public init(
        submitted: Int = 0, ok: Int = 0, failed: Int = 0, errors: Int = 0, wrong: Int = 0, unanswered: Int = 0,
        retried: Int = 0
    ) {
        self.submitted = submitted
        self.ok = ok
        self.failed = failed
        self.errors = errors
        self.wrong = wrong
        self.unanswered = unanswered
        self.retried = retried
    }

    public var answered: Int { ok + failed + errors + wrong }
    public var lost: Int { submitted - answered }

    public static func + (a: Self, b: Self) -> Self {
        DemoJobCounts(
            submitted: a.submitted + b.submitted, ok: a.ok + b.ok, failed: a.failed + b.failed,
            errors: a.errors + b.errors, wrong: a.wrong + b.wrong, unanswered: a.unanswered + b.unanswered,
            retried: a.retried + b.retried)
    }
}
