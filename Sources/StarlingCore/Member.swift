/// One entry of a process's own record of its peers (docs/HANDBOOK.md, "record"): what it last heard.
public struct Member: Hashable, Sendable {
    public var id: NodeID
    public var service: ServiceName
    public var status: MemberStatus
    /// Operator priority: higher wins the primary role; ties go to the older identity.
    public var priority: Int32
    /// The fencing epoch the member last announced.
    public var epoch: UInt64
    public var workload: Workload
    public var address: NodeAddress
    /// Monotonic time (ms) of the last fresh news of this member, direct or relayed.
    public var lastHeardMs: Int64
    /// The highest heartbeat sequence number known for it, direct or relayed.
    public var sequence: UInt64
    /// It announced that it is draining or leaving (graceful stop): not a candidate any more.
    public var leaving: Bool

    public init(
        id: NodeID, service: ServiceName, status: MemberStatus, priority: Int32, epoch: UInt64,
        workload: Workload, address: NodeAddress, lastHeardMs: Int64, sequence: UInt64, leaving: Bool = false
    ) {
        self.id = id
        self.service = service
        self.status = status
        self.priority = priority
        self.epoch = epoch
        self.workload = workload
        self.address = address
        self.lastHeardMs = lastHeardMs
        self.sequence = sequence
        self.leaving = leaving
    }
}
