/// What the job path needs of one process's membership record (docs/HANDBOOK.md, "The job
/// path"): its own role, the fencing floor, where each service's jobs go and who can run its own.
/// `JobEngine.follow` takes it after every change of the record.
public struct JobView: Hashable, Sendable {
    /// A service's primary as this process sees it.
    public struct Primary: Hashable, Sendable {
        public var address: NodeAddress
        public var epoch: UInt64
        /// The service's job timeout as the primary announces it (0: it does not say).
        public var jobTimeoutMs: Int64

        public init(address: NodeAddress, epoch: UInt64, jobTimeoutMs: Int64 = 0) {
            self.address = address
            self.epoch = epoch
            self.jobTimeoutMs = jobTimeoutMs
        }
    }

    /// This process's epoch while it is its service's primary; nil otherwise.
    public var primaryEpoch: UInt64?
    /// The highest epoch of this process's service seen in the record: the fencing floor.
    public var highestEpoch: UInt64
    /// Every service type with members, and its primary where it has one.
    public var primaries: [ServiceName: Primary?]
    /// The other members of this process's service that may run its jobs (standbys and
    /// to-become-primary), with their slots; a draining or leaving one has none.
    public var executors: [JobRouter.Executor]

    public init(primaryEpoch: UInt64?, highestEpoch: UInt64, primaries: [ServiceName: Primary?], executors: [JobRouter.Executor]) {
        self.primaryEpoch = primaryEpoch
        self.highestEpoch = highestEpoch
        self.primaries = primaries
        self.executors = executors
    }

    /// The view of `membership`'s record at `nowMs`.
    public init(_ membership: Membership, nowMs: Int64) {
        let service = membership.config.service
        primaryEpoch = membership.status == .primary ? membership.epoch : nil
        highestEpoch = max(membership.highestEpoch[service, default: 0], primaryEpoch ?? 0)
        // One pass over the record (as `Membership.primary(of:)` per service would take one each):
        // per service, the primary with the highest (epoch, rank).
        var best: [ServiceName: Member] = [:]
        var primaries: [ServiceName: Primary?] = [service: nil]
        func consider(_ member: Member) {
            if primaries[member.service] == nil { primaries[member.service] = .some(nil) }
            guard member.status == .primary else { return }
            if let sitting = best[member.service],
               (sitting.epoch, Membership.Rank(sitting)) >= (member.epoch, Membership.Rank(member)) { return }
            best[member.service] = member
        }
        for member in membership.members.values { consider(member) }
        consider(membership.selfMember(nowMs: nowMs))
        for (name, primary) in best {
            primaries[name] = .some(Primary(address: primary.address, epoch: primary.epoch,
                                            jobTimeoutMs: Int64(primary.workload.jobTimeoutMs)))
        }
        self.primaries = primaries
        executors = membership.members.values
            .filter { $0.service == service && ($0.status == .standby || $0.status == .toBecomePrimary) }
            .sorted { $0.address < $1.address }
            .map { JobRouter.Executor(address: $0.address, slots: $0.leaving ? 0 : Int($0.workload.capacity)) }
    }
}
