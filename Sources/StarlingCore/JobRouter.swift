import DequeModule

/// The primary's side of jobs (docs/HANDBOOK.md, "The job path"): one queue for its service type,
/// dispatched to the executor with the lowest load by its own in-flight accounting. Every dispatch
/// carries the primary's epoch, so an executor that has seen a newer primary refuses it (fencing).
///
/// Only a primary routes. A process that steps down keeps relaying the outcomes of what it
/// dispatched, but dispatches nothing more, and forgets a job whose dispatch is lost (its
/// executor left, declined it or lost the link): the entry nodes forward their jobs to the new
/// primary. A forward that reaches a process that is not primary is ignored for the same reason.
/// Part of `JobEngine`.
public struct JobRouter: Sendable {
    public struct Config: Sendable {
        /// Jobs queued here and not yet dispatched; beyond it, `BUSY`.
        public var maxQueued = 65_536
        /// Jobs sent to one executor beyond its slots, so that it never waits for the next dispatch.
        public var prefetchPerSlot = 1
        /// How much busier than the least-loaded executor (in share of its slots) a job's own
        /// entry node may be and still run it: the job then needs no hop to an executor and its
        /// outcome none back to the entry node (docs/HANDBOOK.md, "The job path").
        public var entryLocality = 0.125
        /// The service's job sizes: a payload over its limit is refused `TOO_LARGE` here; the
        /// engine checks results against the same limits (`JobEngine.finished`).
        public var sizes = JobSizeLimits()
        /// The service's `timeout_ms`: a dispatch with no answer is sent again after `overdue`'s
        /// bound derived from it.
        public var jobTimeoutMs = ServiceDefinition.defaultTimeoutMs
        public var overdue = JobOverdue()
        /// Whether the primary leases key shards to its executors (docs/HANDBOOK.md, "Key
        /// shards"). Without leases every job crosses the primary and is placed by load, as jobs
        /// of shards no executor holds are.
        public var leasesShards = true

        public init() {}
    }

    /// A process that can run this service's jobs, as the shell sees it in the record.
    public struct Executor: Hashable, Sendable {
        public var address: NodeAddress
        /// Jobs it runs at once (its workload's capacity).
        public var slots: Int

        public init(address: NodeAddress, slots: Int) {
            self.address = address
            self.slots = slots
        }
    }

    struct Routed: Sendable {
        var ticket: JobTicket
        /// Entry nodes to tell the outcome: the ticket's, and any that forwarded the same key.
        var entries: [NodeAddress]
        var executor: NodeAddress?
        /// Whether this router dispatched `ticket` to `executor` itself (not adopted it from a
        /// `running` list): that executor then sends the outcome straight to `ticket.entry`, and
        /// the router relays it only to the other entry nodes.
        var executorKnowsEntry = false
        /// When its dispatch last went, and how often it went again for being overdue.
        var dispatchedAtMs: Int64 = 0
        var overdueRounds = 0
    }

    public let config: Config
    public let service: ServiceName
    /// This process's own address: it leases no shards to itself.
    public let address: NodeAddress?
    /// The epoch while primary; nil otherwise.
    public private(set) var epoch: UInt64?
    private var jobs: [JobKey: Routed] = [:]
    private var queue: Deque<JobKey> = []
    /// Executors that take dispatches now: those in the record, less any that declined since.
    private var executors: [NodeAddress: Int] = [:]
    /// Executors in the record, with their slots: what the shards are shared among.
    private var inRecord: [NodeAddress: Int] = [:]
    /// Jobs dispatched to each executor and not finished: `jobs` counted by `executor`, kept in
    /// step by `assign` (a count, not a set of keys per executor, so no job allocates here).
    private var busy: [NodeAddress: Int] = [:]
    /// Who owns and holds each key shard (docs/HANDBOOK.md, "Key shards").
    private var leases = ShardLeases()
    /// Jobs bound to one executor (its shard's owner) that has no room for them now, in order:
    /// dispatched as it has room again, or queued anew if it leaves.
    private var waitingFor: [NodeAddress: Deque<JobKey>] = [:]

    public init(service: ServiceName, address: NodeAddress? = nil, config: Config = Config()) {
        self.service = service
        self.address = address
        self.config = config
    }

    /// The key shards each executor holds under this epoch.
    public var grantedShards: [NodeAddress: KeyShardSet] { leases.granted }

    /// Jobs waiting to be dispatched: the backlog reported in heartbeats.
    public var backlog: Int { waitingFor.values.reduce(queue.count) { $0 + $1.count } }
    /// Jobs dispatched and not yet finished.
    public var dispatchedCount: Int { busy.values.reduce(0, +) }

    // MARK: Role

    /// This process became primary with `epoch`.
    public mutating func becamePrimary(epoch: UInt64, nowMs: Int64) -> [JobDirective] {
        self.epoch = epoch
        leases.reset()
        return rebalance(nowMs: nowMs) + pump(nowMs: nowMs)
    }

    /// This process is no longer primary: the queue is dropped (its entry nodes forward those jobs
    /// to the new primary); outcomes of dispatched jobs are still relayed when they come.
    public mutating func steppedDown() {
        epoch = nil
        for key in queue { jobs[key] = nil }
        for keys in waitingFor.values { for key in keys { jobs[key] = nil } }
        queue.removeAll()
        waitingFor.removeAll()
        leases.reset()
    }

    /// The executors the shell sees now. Jobs on one that is gone are dispatched again.
    public mutating func update(executors current: [Executor], nowMs: Int64) -> [JobDirective] {
        let record = Dictionary(current.map { ($0.address, max(0, $0.slots)) }, uniquingKeysWith: max)
        // One that declined a dispatch of this epoch as stale has seen a newer epoch and declines
        // them all: it stays out until the next epoch, or every change of the record would send it
        // the queue again, to be declined again, until this primary learns the newer epoch.
        let next = leases.fencedOff.isEmpty ? record : record.filter { !leases.fencedOff.contains($0.key) }
        guard next != executors || record != inRecord else { return [] }
        // What this process runs itself (a primary with no standby) still runs when it stops
        // being an executor because one joined: its outcomes come here all the same. So do the
        // jobs a fenced-off executor runs already.
        for gone in busy.keys where record[gone] == nil && gone != address { requeue(everythingOn: gone) }
        executors = next
        guard record != inRecord else { return pump(nowMs: nowMs) }
        inRecord = record
        return rebalance(nowMs: nowMs) + pump(nowMs: nowMs)
    }

    // MARK: Frames

    /// A frame for the primary: a job forwarded by an entry node (a key `recent` knows is answered
    /// from there), or an executor's report (an outcome goes into `recent`).
    public mutating func received(
        _ message: PeerMessage, from peer: NodeAddress, recent: inout RecentOutcomes, nowMs: Int64
    ) -> [JobDirective] {
        switch message {
        case .forward(let ticket):
            return forward(ticket, recent: recent, nowMs: nowMs)
        case .result(_, _, let key, let outcome):
            return finished(key, outcome: outcome, on: peer, recent: &recent, nowMs: nowMs)
        case .declined(let declinedEpoch, _, let key, let reason):
            guard jobs[key]?.executor == peer else { return [] }
            assign(key, to: nil)
            requeue(key)
            // A job adopted from an older primary's dispatch, which the fence stopped: it is
            // placed anew, and the executor takes this epoch's jobs as before.
            guard declinedEpoch == epoch else { return pump(nowMs: nowMs) }
            // It will not take more now; it comes back with the next change of the record. What
            // it runs already stays there: it reports those outcomes as usual.
            executors[peer] = nil
            guard reason == JobRunner.declinedFull || reason == JobRunner.declinedDraining else {
                // It has seen a newer epoch (or runs another service): it took none of this
                // epoch's leases either (frames arrive in order), so its shards go to others.
                leases.fenceOff(peer)
                return rebalance(nowMs: nowMs) + pump(nowMs: nowMs)
            }
            return pump(nowMs: nowMs)
        case .running(_, _, let keys):
            adopt(keys, runningOn: peer, nowMs: nowMs)
            return pump(nowMs: nowMs)
        case .released(let releasedEpoch, let releasedService, let holding, let keys):
            guard releasedEpoch == epoch, releasedService == service else { return [] }
            adopt(keys, runningOn: peer, nowMs: nowMs)
            leases.released(by: peer, holding: holding, unknown: [], nowMs: nowMs)
            rebind()
            return grant() + pump(nowMs: nowMs)
        case .refused(let refusedService, let key, let code, let text):
            // The executor will not run it (it knows the key with another payload): the entry
            // nodes are told, as for a refusal here.
            guard refusedService == service, jobs[key]?.executor == peer else { return [] }
            let job = jobs.removeValue(forKey: key)!
            release(job.executor)
            let refusal = PeerMessage.refused(service: service, key: key, code: code, message: text)
            return job.entries.map { .send(refusal, to: $0) } + pump(nowMs: nowMs)
        default:
            return []
        }
    }

    /// The link to `peer` broke: what was sent to it may be lost, so its jobs go again. An
    /// executor that still runs one attaches the new dispatch to it instead of running it twice.
    public mutating func linkLost(to peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        requeue(everythingOn: peer)
        return leaseFrames(leases.leasesToResend(to: peer)) + pump(nowMs: nowMs)
    }

    /// The shell could not send the lease frame to `executor`: its current lease goes at the next tick.
    public mutating func leaseDropped(to executor: NodeAddress) {
        leases.leaseFrameDropped(to: executor)
    }

    /// The shell could not send the dispatch of `key` to `executor`: the job is queued again and
    /// dispatched at the next tick (not at once: the link that refused it is likely still full).
    public mutating func dispatchDropped(_ key: JobKey, to executor: NodeAddress) {
        guard jobs[key]?.executor == executor else { return }
        assign(key, to: nil)
        requeue(key)
    }

    /// The periodic step: jobs queued again since the last step are dispatched,
    /// and overdue dispatches (`JobOverdue`) go again to the same executor, which attaches them to
    /// the job or answers from its recent outcomes. After stepping down, an overdue job is let go:
    /// its entry nodes forward it to the new primary.
    public mutating func tick(nowMs: Int64) -> [JobDirective] {
        var out = leaseFrames(leases.leasesToResend())
        // A run that started before its key was remembered here has ended within one overdue bound.
        leases.expireHeld(olderThan: config.overdue.dispatchMs(jobTimeoutMs: config.jobTimeoutMs, round: 0), nowMs: nowMs)
        out += grant()
        let overdue = jobs.filter { _, job in
            job.executor != nil
                && nowMs - job.dispatchedAtMs >= config.overdue.dispatchMs(jobTimeoutMs: config.jobTimeoutMs, round: job.overdueRounds)
        }
        for (key, job) in overdue.sorted(by: { $0.key < $1.key }) {
            guard let epoch else {
                release(job.executor)
                jobs[key] = nil
                continue
            }
            jobs[key]!.dispatchedAtMs = nowMs
            jobs[key]!.overdueRounds += 1
            jobs[key]!.executorKnowsEntry = true
            out.append(.send(.dispatch(epoch: epoch, ticket: job.ticket), to: job.executor!))
        }
        return out + pump(nowMs: nowMs)
    }

    /// Jobs this router holds: queued, dispatched, or relayed after stepping down.
    public var jobCount: Int { jobs.count }

    // MARK: Internals

    private mutating func forward(_ ticket: JobTicket, recent: RecentOutcomes, nowMs: Int64) -> [JobDirective] {
        let id = JobID(service: ticket.service, key: ticket.key)
        switch recent.recall(id, payload: ticket.payload) {
        case .answered(let outcome):
            return [.send(.result(epoch: epoch ?? 0, service: service, key: ticket.key, outcome: outcome), to: ticket.entry)]
        case .otherPayload:
            return [refuse(ticket, .badRequest, PayloadDigest.conflictMessage)]
        case nil:
            break
        }
        if let job = jobs[ticket.key] {
            guard job.ticket.payload == ticket.payload else { return [refuse(ticket, .badRequest, PayloadDigest.conflictMessage)] }
            if !job.entries.contains(ticket.entry) {
                jobs[ticket.key]!.entries.append(ticket.entry)
            } else if ticket.entry == job.ticket.entry {
                // The ticket's entry node asks again (a link of its broke, or the answer is
                // overdue): the outcome its executor sends it straight may be the frame it lost,
                // so this router relays the outcome to it too when it comes.
                jobs[ticket.key]!.executorKnowsEntry = false
            }
            return []
        }
        // Not primary (any more, or not yet): the entry node forwards it again to the primary
        // it learns of next. A refusal here would fail a job that has a primary elsewhere.
        guard epoch != nil else { return [] }
        if let refusal = config.sizes.payloadRefusal(ticket.payload.count, service: service) {
            return [refuse(ticket, .tooLarge, refusal)]
        }
        guard backlog < config.maxQueued else {
            return [refuse(ticket, .busy, "the queue of \(service.value) is full (\(config.maxQueued) jobs)")]
        }
        jobs[ticket.key] = Routed(ticket: ticket, entries: [ticket.entry], executor: nil)
        queue.append(ticket.key)
        return pump(nowMs: nowMs)
    }

    /// Shares the key shards among the executors anew (docs/HANDBOOK.md, "Key shards"): lease
    /// frames to those that give shards back, then to those granted more.
    private mutating func rebalance(nowMs: Int64) -> [JobDirective] {
        guard epoch != nil, config.leasesShards else { return [] }
        let candidates = inRecord.compactMap { address, slots in
            address != self.address && slots > 0 ? Executor(address: address, slots: slots) : nil
        }
        let frames = leaseFrames(leases.rebalance(candidates: candidates, present: Set(inRecord.keys)))
        rebind()
        return frames + grant()
    }

    /// The lines of jobs waiting for one executor go back to the front of the queue, in order,
    /// when the shards change hands: the next pump binds each job anew.
    private mutating func rebind() {
        guard !waitingFor.isEmpty else { return }
        for executor in waitingFor.keys.sorted(by: >) {
            queue.insert(contentsOf: waitingFor[executor]!, at: 0)
        }
        waitingFor.removeAll()
    }

    /// Lease frames for shards whose owner does not hold them yet and may now: no job of the
    /// shard that the owner could not know of runs elsewhere (one dispatched by load to another
    /// executor, or one held elsewhere without a ticket here).
    private mutating func grant() -> [JobDirective] {
        guard epoch != nil, leases.hasUngranted else { return [] }
        var blocked = KeyShardSet.none
        for job in jobs.values {
            guard let executor = job.executor else { continue }
            let shard = job.ticket.key.shard
            if let owner = leases.owner[shard], owner != executor, !job.entries.contains(owner) { blocked.insert(shard) }
        }
        for (key, held) in leases.held {
            let shard = key.shard
            if let owner = leases.owner[shard], owner != held.executor { blocked.insert(shard) }
        }
        return leaseFrames(leases.grant(blocked: blocked))
    }

    private func leaseFrames(_ frames: [(NodeAddress, KeyShardSet)]) -> [JobDirective] {
        guard let epoch else { return [] }
        return frames.map { .send(.lease(epoch: epoch, service: service, shards: $1), to: $0) }
    }

    /// A job that is no longer waiting to be dispatched leaves the queue (or its executor's line).
    private mutating func unqueue(_ key: JobKey) {
        if let index = queue.firstIndex(of: key) {
            queue.remove(at: index)
            return
        }
        for (executor, keys) in waitingFor {
            guard let index = keys.firstIndex(of: key) else { continue }
            waitingFor[executor]!.remove(at: index)
            if waitingFor[executor]!.isEmpty { waitingFor[executor] = nil }
            return
        }
    }

    private mutating func finished(
        _ key: JobKey, outcome: JobOutcome, on executor: NodeAddress, recent: inout RecentOutcomes, nowMs: Int64
    ) -> [JobDirective] {
        guard let job = jobs.removeValue(forKey: key) else {
            if leases.held[key]?.executor == executor { leases.stopHolding(key) }
            return pump(nowMs: nowMs)
        }
        release(job.executor)
        recent.remember(outcome, for: JobID(service: service, key: key), payload: job.ticket.payload, nowMs: nowMs)
        if job.executor == nil { unqueue(key) }
        let result = PeerMessage.result(epoch: epoch ?? 0, service: service, key: key, outcome: outcome)
        // The executor this router dispatched to has told the ticket's entry node itself.
        let toldByExecutor = job.executorKnowsEntry && job.executor == executor ? job.ticket.entry : nil
        return job.entries.filter { $0 != toldByExecutor }.map { .send(result, to: $0) } + pump(nowMs: nowMs)
    }

    /// A new primary learns what an executor still runs from the old one's dispatches.
    private mutating func adopt(_ keys: [JobKey], runningOn executor: NodeAddress, nowMs: Int64) {
        var unknown: [JobKey] = []
        defer { leases.remember(unknown, heldBy: executor, nowMs: nowMs) }
        for key in keys {
            // A key forwarded later goes there, to attach to the run.
            guard let job = jobs[key] else { unknown.append(key); continue }
            guard job.executor != executor else { continue }  // dispatched there by this router
            if job.executor == nil { unqueue(key) }
            assign(key, to: executor)
            jobs[key]!.executorKnowsEntry = false
            jobs[key]!.dispatchedAtMs = nowMs
        }
    }

    private mutating func requeue(everythingOn executor: NodeAddress) {
        guard busy[executor] != nil else { return }
        let keys = jobs.compactMap { $0.value.executor == executor ? $0.key : nil }
        for key in keys.sorted(by: >) {
            assign(key, to: nil)
            requeue(key)
        }
        busy[executor] = nil
    }

    /// Places the job of `key` on `executor` (nil: on none), keeping `busy` in step.
    private mutating func assign(_ key: JobKey, to executor: NodeAddress?) {
        release(jobs[key]!.executor)
        jobs[key]!.executor = executor
        if let executor { busy[executor, default: 0] += 1 }
    }

    /// A job is no longer on `executor`.
    private mutating func release(_ executor: NodeAddress?) {
        guard let executor, let index = busy.index(forKey: executor) else { return }
        busy.values[index] -= 1
    }

    /// A job whose dispatch is lost goes to the front of the queue while primary; after stepping
    /// down it is forgotten, since its entry nodes forward it to the new primary.
    private mutating func requeue(_ key: JobKey) {
        if epoch == nil {
            jobs[key] = nil
        } else {
            queue.prepend(key)
        }
    }

    private func refuse(_ ticket: JobTicket, _ code: ClientErrorCode, _ message: String) -> JobDirective {
        .send(.refused(service: service, key: ticket.key, code: code, message: message), to: ticket.entry)
    }

    /// Dispatches queued jobs, each to the executor with the lowest share of its slots in use, or
    /// to its own entry node when that is nearly as free (`entryLocality`), while any has room
    /// (slots plus prefetch). A job bound to one executor (`ShardLeases.boundExecutor`: its
    /// shard's owner) waits in that executor's line while it has no room; one that runs there
    /// already goes at once, to attach.
    private mutating func pump(nowMs: Int64) -> [JobDirective] {
        guard epoch != nil, !executors.isEmpty else { return [] }
        var out: [JobDirective] = []
        for executor in waitingFor.keys.sorted() {
            while load(of: executor) != nil, let key = waitingFor[executor]?.popFirst() {
                if waitingFor[executor]!.isEmpty { waitingFor[executor] = nil }
                dispatch(key, to: executor, nowMs: nowMs, into: &out)
            }
        }
        while let key = queue.first {
            guard let job = jobs[key] else {
                queue.removeFirst()
                continue
            }
            if let bound = leases.boundExecutor(for: key, entries: job.entries) {
                queue.removeFirst()
                if leases.held[key] != nil || (waitingFor[bound] == nil && load(of: bound) != nil) {
                    dispatch(key, to: bound, nowMs: nowMs, into: &out)
                } else {
                    waitingFor[bound, default: []].append(key)
                }
                continue
            }
            // An entry node that holds the key's shard forwarded it for want of a free slot: it
            // goes elsewhere while another executor has room.
            let spilled = leases.granted[job.ticket.entry]?.contains(key.shard) == true
            guard let leastLoaded = (spilled ? leastLoaded(other: job.ticket.entry) : nil) ?? leastLoaded() else { break }
            queue.removeFirst()
            let local = spilled ? nil : entryIfLocal(job.ticket.entry, leastLoaded: leastLoaded)
            dispatch(key, to: local ?? leastLoaded.address, nowMs: nowMs, into: &out)
        }
        return out
    }

    private mutating func dispatch(_ key: JobKey, to executor: NodeAddress, nowMs: Int64, into out: inout [JobDirective]) {
        guard let epoch, jobs[key] != nil else { return }
        leases.stopHolding(key)
        assign(key, to: executor)
        jobs[key]!.executorKnowsEntry = true
        jobs[key]!.dispatchedAtMs = nowMs
        out.append(.send(.dispatch(epoch: epoch, ticket: jobs[key]!.ticket), to: executor))
    }

    /// The executor with room whose share of its slots in use is lowest (ties: the lower address).
    private func leastLoaded(other excluded: NodeAddress? = nil) -> (address: NodeAddress, load: Double)? {
        var best: (address: NodeAddress, load: Double)?
        for address in executors.keys where address != excluded {
            guard let load = load(of: address) else { continue }
            if best == nil || load < best!.load || (load == best!.load && address < best!.address) {
                best = (address, load)
            }
        }
        return best
    }

    /// The job's entry node, when it is an executor with room within `entryLocality` of the
    /// least-loaded one.
    private func entryIfLocal(_ entry: NodeAddress, leastLoaded: (address: NodeAddress, load: Double)) -> NodeAddress? {
        guard entry != leastLoaded.address, let load = load(of: entry), load <= leastLoaded.load + config.entryLocality
        else { return nil }
        return entry
    }

    /// An executor's share of its slots in use; nil when it has no room (slots plus prefetch).
    private func load(of address: NodeAddress) -> Double? {
        guard let slots = executors[address], slots > 0 else { return nil }
        let inUse = busy[address] ?? 0
        guard inUse < slots * (1 + config.prefetchPerSlot) else { return nil }
        return Double(inUse) / Double(slots)
    }
}
