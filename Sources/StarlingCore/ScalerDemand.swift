/// One service type's demand as its members report it in one tick.
struct ScalerDemand: Sendable {
    /// Members counted as workers: not leaving and not asked to retire; by identity.
    let active: [Member]
    /// Jobs queued at its primary (all members' backlogs, so a handover counts both).
    let backlog: Int
    /// Jobs running on the active members.
    let running: Int
    /// The active members that run jobs: standbys, or the primary when it has none.
    let executors: [Member]
    let executingCapacity: Int
    /// The worker a scale-down would retire: the least-loaded standby (never the last worker:
    /// `min_workers` is at least 1).
    let candidate: Member?
    /// Executing slots left once `candidate` is gone.
    let capacityWithoutCandidate: Int

    init(present: [Member], retiring: [NodeID: Int64]) {
        active = present.filter { !$0.leaving && retiring[$0.id] == nil }.sorted { $0.id < $1.id }
        backlog = present.reduce(0) { $0 + Int($1.workload.backlog) }
        running = active.reduce(0) { $0 + Int($1.workload.running) }
        executors = Self.executors(of: active)
        executingCapacity = Self.capacity(of: executors)
        let standbys = active.filter { $0.status == .standby }
        candidate = standbys.min(by: Self.retiresBefore)
        if let candidate {
            capacityWithoutCandidate = Self.capacity(of: Self.executors(of: active.filter { $0.id != candidate.id }))
        } else {
            capacityWithoutCandidate = executingCapacity
        }
    }

    /// Above `perWorker` queued jobs per executing worker (at least one, so a service with no
    /// executor yet still counts its queue).
    func isHigh(perWorker: Int) -> Bool {
        backlog > perWorker * max(1, executors.count)
    }

    /// Nothing queued, and the running jobs fit in `utilization` of the slots left after retiring
    /// the candidate.
    func isLow(utilization: Double) -> Bool {
        candidate != nil && backlog == 0 && Double(running) <= utilization * Double(capacityWithoutCandidate)
    }

    /// The worker to retire when there are more than `max_workers`: a standby if any, then a
    /// joining worker, a `to-become-primary`, the primary last; least loaded first.
    var overflowCandidate: Member? {
        active.min { a, b in
            let (ra, rb) = (Self.statusRank(a.status), Self.statusRank(b.status))
            return ra != rb ? ra < rb : Self.retiresBefore(a, b)
        }
    }

    static func executors(of members: [Member]) -> [Member] {
        let standbys = members.filter { $0.status == .standby }
        return standbys.isEmpty ? members.filter { $0.status.claimsPrimary } : standbys
    }

    static func capacity(of members: [Member]) -> Int {
        members.reduce(0) { $0 + Int($1.workload.capacity) }
    }

    /// Least running first, then the lower operator priority, then the younger identity (the
    /// workers that rank highest for election stay).
    static func retiresBefore(_ a: Member, _ b: Member) -> Bool {
        if a.workload.running != b.workload.running { return a.workload.running < b.workload.running }
        if a.priority != b.priority { return a.priority < b.priority }
        return a.id > b.id
    }

    private static func statusRank(_ status: MemberStatus) -> Int {
        switch status {
        case .standby: 0
        case .joining: 1
        case .toBecomePrimary: 2
        case .primary: 3
        }
    }
}
