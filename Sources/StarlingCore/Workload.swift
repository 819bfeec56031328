/// What a process reports of its load in every heartbeat (docs/HANDBOOK.md, "workload").
public struct Workload: Hashable, Sendable {
    /// Jobs running now.
    public var running: UInt32
    /// Jobs it can run at once.
    public var capacity: UInt32
    /// Jobs queued and not yet dispatched (a primary's queue).
    public var backlog: UInt32

    public init(running: UInt32 = 0, capacity: UInt32 = 1, backlog: UInt32 = 0) {
        self.running = running
        self.capacity = capacity
        self.backlog = backlog
    }

    /// Running jobs per slot; a process with no slots counts as full.
    public var load: Double {
        capacity == 0 ? .infinity : Double(running) / Double(capacity)
    }
}
