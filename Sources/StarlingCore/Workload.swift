/// What a process reports of its load in every heartbeat (docs/HANDBOOK.md, "workload").
public struct Workload: Hashable, Sendable {
    /// Jobs running now.
    public var running: UInt32
    /// Jobs it can run at once.
    public var capacity: UInt32
    /// Jobs queued and not yet dispatched (a primary's queue).
    public var backlog: UInt32
    /// The longest one of its jobs may run (its service's `timeout_ms`); 0 when it does not say.
    /// Entry nodes derive from their primary's when a forwarded job is overdue (`JobOverdue`).
    public var jobTimeoutMs: UInt32

    public init(running: UInt32 = 0, capacity: UInt32 = 1, backlog: UInt32 = 0, jobTimeoutMs: UInt32 = 0) {
        self.running = running
        self.capacity = capacity
        self.backlog = backlog
        self.jobTimeoutMs = jobTimeoutMs
    }

    /// Running jobs per slot; a process with no slots counts as full.
    public var load: Double {
        capacity == 0 ? .infinity : Double(running) / Double(capacity)
    }
}
