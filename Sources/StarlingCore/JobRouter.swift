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
    /// The epoch while primary; nil otherwise.
    public private(set) var epoch: UInt64?
    private var jobs: [JobKey: Routed] = [:]
    private var queue: Deque<JobKey> = []
    private var executors: [NodeAddress: Int] = [:]
    /// Jobs dispatched to each executor and not finished: `jobs` counted by `executor`, kept in
    /// step by `assign` (a count, not a set of keys per executor, so no job allocates here).
    private var busy: [NodeAddress: Int] = [:]

    public init(service: ServiceName, config: Config = Config()) {
        self.service = service
        self.config = config
    }

    /// Jobs waiting to be dispatched: the backlog reported in heartbeats.
    public var backlog: Int { queue.count }
    /// Jobs dispatched and not yet finished.
    public var dispatchedCount: Int { busy.values.reduce(0, +) }

    // MARK: Role

    /// This process became primary with `epoch`.
    public mutating func becamePrimary(epoch: UInt64, nowMs: Int64) -> [JobDirective] {
        self.epoch = epoch
        return pump(nowMs: nowMs)
    }

    /// This process is no longer primary: the queue is dropped (its entry nodes forward those jobs
    /// to the new primary); outcomes of dispatched jobs are still relayed when they come.
    public mutating func steppedDown() {
        epoch = nil
        for key in queue { jobs[key] = nil }
        queue.removeAll()
    }

    /// The executors the shell sees now. Jobs on one that is gone are dispatched again.
    public mutating func update(executors current: [Executor], nowMs: Int64) -> [JobDirective] {
        let next = Dictionary(current.map { ($0.address, max(0, $0.slots)) }, uniquingKeysWith: max)
        guard next != executors else { return [] }
        for gone in executors.keys where next[gone] == nil { requeue(everythingOn: gone) }
        executors = next
        return pump(nowMs: nowMs)
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
        case .declined(_, _, let key, _):
            guard jobs[key]?.executor == peer else { return [] }
            assign(key, to: nil)
            requeue(key)
            // It will not take more now; it comes back with the next change of the record.
            executors[peer] = nil
            requeue(everythingOn: peer)
            return pump(nowMs: nowMs)
        case .running(_, _, let keys):
            adopt(keys, runningOn: peer, nowMs: nowMs)
            return pump(nowMs: nowMs)
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
        return pump(nowMs: nowMs)
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
        var out: [JobDirective] = []
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
        guard queue.count < config.maxQueued else {
            return [refuse(ticket, .busy, "the queue of \(service.value) is full (\(config.maxQueued) jobs)")]
        }
        jobs[ticket.key] = Routed(ticket: ticket, entries: [ticket.entry], executor: nil)
        queue.append(ticket.key)
        return pump(nowMs: nowMs)
    }

    private mutating func finished(
        _ key: JobKey, outcome: JobOutcome, on executor: NodeAddress, recent: inout RecentOutcomes, nowMs: Int64
    ) -> [JobDirective] {
        guard let job = jobs.removeValue(forKey: key) else { return pump(nowMs: nowMs) }
        release(job.executor)
        recent.remember(outcome, for: JobID(service: service, key: key), payload: job.ticket.payload, nowMs: nowMs)
        if job.executor == nil, let index = queue.firstIndex(of: key) { queue.remove(at: index) }
        let result = PeerMessage.result(epoch: epoch ?? 0, service: service, key: key, outcome: outcome)
        // The executor this router dispatched to has told the ticket's entry node itself.
        let toldByExecutor = job.executorKnowsEntry && job.executor == executor ? job.ticket.entry : nil
        return job.entries.filter { $0 != toldByExecutor }.map { .send(result, to: $0) } + pump(nowMs: nowMs)
    }

    /// A new primary learns what an executor still runs from the old one's dispatches.
    private mutating func adopt(_ keys: [JobKey], runningOn executor: NodeAddress, nowMs: Int64) {
        for key in keys {
            guard let job = jobs[key] else { continue }  // its entry node forwards it again soon
            if job.executor == nil, let index = queue.firstIndex(of: key) { queue.remove(at: index) }
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
    /// (slots plus prefetch).
    private mutating func pump(nowMs: Int64) -> [JobDirective] {
        guard let epoch, !queue.isEmpty, !executors.isEmpty else { return [] }
        var out: [JobDirective] = []
        while !queue.isEmpty, let leastLoaded = leastLoaded() {
            let key = queue.removeFirst()
            guard jobs[key] != nil else { continue }
            let executor = entryIfLocal(jobs[key]!.ticket.entry, leastLoaded: leastLoaded) ?? leastLoaded.address
            assign(key, to: executor)
            jobs[key]!.executorKnowsEntry = true
            jobs[key]!.dispatchedAtMs = nowMs
            out.append(.send(.dispatch(epoch: epoch, ticket: jobs[key]!.ticket), to: executor))
        }
        return out
    }

    /// The executor with room whose share of its slots in use is lowest (ties: the lower address).
    private func leastLoaded() -> (address: NodeAddress, load: Double)? {
        var best: (address: NodeAddress, load: Double)?
        for address in executors.keys {
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
