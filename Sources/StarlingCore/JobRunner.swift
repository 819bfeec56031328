import DequeModule

/// The executor's side of jobs: it runs what its primary dispatches, at most `slots` at once, and
/// reports each outcome to whoever dispatched it and straight to the job's entry node. It refuses dispatches stamped with an epoch older
/// than one it has seen (fencing), and runs a key at most once while it runs or remembers it: a
/// dispatch of a key it is running attaches to it, one it finished recently gets the same outcome,
/// and one it knows with another payload is refused to the primary, which tells the entry nodes.
public struct JobRunner: Sendable {
    public struct Config: Sendable {
        /// Jobs run at once (the service's `concurrency`).
        public var slots: Int
        /// Jobs accepted beyond the slots, waiting for one; beyond it a dispatch is declined.
        public var maxWaiting: Int

        public init(slots: Int, maxWaiting: Int? = nil) {
            self.slots = max(1, slots)
            self.maxWaiting = maxWaiting ?? max(16, 2 * self.slots)
        }
    }

    struct Accepted: Sendable {
        var ticket: JobTicket
        /// The newest epoch it was dispatched under: it runs only if that is not below the fence.
        var epoch: UInt64
        /// The primaries to report to: the one that dispatched it, and any later one that did again.
        var reportTo: [NodeAddress]
        /// The entry nodes its dispatches named: they get the outcome straight from here, without
        /// the hop through the primary (docs/HANDBOOK.md, "The job path").
        var entries: [NodeAddress]
    }

    /// A primary's lease on key shards of this service (docs/HANDBOOK.md, "Key shards"): keys
    /// of these shards that clients submit here run here, without crossing the primary.
    public struct Lease: Hashable, Sendable {
        public var primary: NodeAddress
        public var epoch: UInt64
        public var shards: KeyShardSet
    }

    /// The reasons of declines that leave the executor able to take this primary's jobs later
    /// (it is full now, or finishing before it stops); any other means it will take none.
    public static let declinedFull = "full"
    public static let declinedDraining = "draining"

    public let config: Config
    public let service: ServiceName
    /// The lease it holds; nil once a newer epoch than the lease's is seen (a new primary leases anew).
    public private(set) var lease: Lease?
    /// The shell could not send the answer to the last lease: a fresh one goes at the next tick.
    private var releasedDropped = false
    /// The fencing floor: the highest epoch of this service seen in dispatches or heartbeats.
    public private(set) var fence: UInt64 = 0
    /// Set when the process drains: it takes no new job.
    public private(set) var isDraining = false
    private var running: [JobKey: Accepted] = [:]
    private var waiting: Deque<JobKey> = []
    private var waitingJobs: [JobKey: Accepted] = [:]

    public init(service: ServiceName, config: Config) {
        self.service = service
        self.config = config
    }

    public var runningCount: Int { running.count }
    public var waitingCount: Int { waiting.count }
    public var isIdle: Bool { running.isEmpty && waiting.isEmpty }
    /// A job given now would start at once.
    public var hasFreeSlot: Bool { running.count < config.slots && waiting.isEmpty }

    /// Raises the fencing floor to an epoch seen in the record; a lease of an older epoch is void.
    public mutating func observe(epoch: UInt64) {
        fence = max(fence, epoch)
        if let lease, lease.epoch < fence { self.lease = nil }
    }

    /// Stops taking new jobs; what is accepted still runs.
    public mutating func drain() {
        isDraining = true
    }

    /// A primary (at `peer`) dispatched a job; a key `recent` knows is answered from there.
    public mutating func received(_ message: PeerMessage, from peer: NodeAddress, recent: RecentOutcomes) -> [JobDirective] {
        guard case .dispatch(let epoch, let ticket) = message else { return [] }
        let key = ticket.key
        func decline(_ reason: String) -> [JobDirective] {
            [.send(.declined(epoch: epoch, service: service, key: key, reason: reason), to: peer)]
        }
        guard ticket.service == service else { return decline("this process runs \(service.value)") }
        guard epoch >= fence else { return decline("epoch \(epoch) is older than \(fence)") }
        observe(epoch: epoch)
        func refuseOtherPayload() -> [JobDirective] {
            [.send(.refused(service: service, key: key, code: .badRequest, message: PayloadDigest.conflictMessage), to: peer)]
        }
        switch recent.recall(JobID(service: service, key: key), payload: ticket.payload) {
        case .answered(let outcome):
            var out: [JobDirective] = []
            Self.send(.result(epoch: epoch, service: service, key: key, outcome: outcome), primaries: [peer], entries: [ticket.entry], into: &out)
            return out
        case .otherPayload: return refuseOtherPayload()
        case nil: break
        }
        if let job = running[key] ?? waitingJobs[key], job.ticket.payload != ticket.payload { return refuseOtherPayload() }
        if running[key] != nil {
            running[key]!.attach(peer, epoch: epoch, entry: ticket.entry)
            return []
        }
        if waitingJobs[key] != nil {
            waitingJobs[key]!.attach(peer, epoch: epoch, entry: ticket.entry)
            return []
        }
        guard !isDraining else { return decline(Self.declinedDraining) }
        let accepted = Accepted(ticket: ticket, epoch: epoch, reportTo: [peer], entries: [ticket.entry])
        if running.count < config.slots {
            running[key] = accepted
            return [.run(ticket, epoch: epoch)]
        }
        guard waiting.count < config.maxWaiting else { return decline(Self.declinedFull) }
        waiting.append(key)
        waitingJobs[key] = accepted
        return []
    }

    /// The handler finished a job started by a `.run` directive; its outcome goes into `recent`.
    public mutating func finished(_ key: JobKey, outcome: JobOutcome, recent: inout RecentOutcomes, nowMs: Int64) -> [JobDirective] {
        guard let job = running.removeValue(forKey: key) else { return [] }
        recent.remember(outcome, for: JobID(service: service, key: key), payload: job.ticket.payload, nowMs: nowMs)
        var out: [JobDirective] = []
        Self.send(.result(epoch: job.epoch, service: service, key: key, outcome: outcome), primaries: job.reportTo, entries: job.entries, into: &out)
        while running.count < config.slots, let next = waiting.popFirst() {
            guard let accepted = waitingJobs.removeValue(forKey: next) else { continue }
            // The fence rose while it waited and no newer primary dispatched it again: whoever
            // dispatched it places it again (the new primary learned of it from `running`).
            guard accepted.epoch >= fence else {
                let reason = "epoch \(accepted.epoch) is older than \(fence)"
                out += accepted.reportTo.map {
                    .send(.declined(epoch: accepted.epoch, service: service, key: next, reason: reason), to: $0)
                }
                continue
            }
            running[next] = accepted
            out.append(.run(accepted.ticket, epoch: accepted.epoch))
        }
        return out
    }

    /// A new primary of this service (at `primary`, with `epoch`): tell it what runs here, so it
    /// attaches jobs forwarded again to these instead of running them twice. Outcomes of what runs
    /// now go to it as well as to the primary that dispatched them.
    public mutating func newPrimary(at primary: NodeAddress, epoch: UInt64) -> [JobDirective] {
        observe(epoch: epoch)
        let keys = (Array(running.keys) + Array(waiting)).sorted()
        for key in running.keys where !running[key]!.reportTo.contains(primary) { running[key]!.reportTo.append(primary) }
        for key in waiting where waitingJobs[key]?.reportTo.contains(primary) == false { waitingJobs[key]!.reportTo.append(primary) }
        guard !keys.isEmpty else { return [] }
        return [.send(.running(epoch: epoch, service: service, keys: keys), to: primary)]
    }

    /// The primary at `primary` leases it exactly `shards` under `epoch`. A lease of an epoch
    /// older than the fence is a stale primary's and is not answered; any other is answered.
    public mutating func leased(_ shards: KeyShardSet, epoch: UInt64, from primary: NodeAddress) -> [JobDirective] {
        guard epoch >= fence else { return [] }
        observe(epoch: epoch)
        lease = Lease(primary: primary, epoch: epoch, shards: shards)
        return released()
    }

    /// The shell could not send the answer to a lease.
    public mutating func releaseDropped() {
        releasedDropped = true
    }

    /// The periodic step: an answer to the lease the shell dropped goes again, as it stands now.
    public mutating func tick() -> [JobDirective] {
        guard releasedDropped else { return [] }
        releasedDropped = false
        return released()
    }

    /// The answer to the lease: the shards it holds, and the keys of other shards it runs or
    /// holds, whose outcomes now go to the lease's primary too (it sends those keys here if they
    /// are submitted again, and forgets them when their outcome comes).
    private mutating func released() -> [JobDirective] {
        guard let lease else { return [] }
        var keys: [JobKey] = []
        for key in running.keys where !lease.shards.contains(key.shard) {
            keys.append(key)
            if !running[key]!.reportTo.contains(lease.primary) { running[key]!.reportTo.append(lease.primary) }
        }
        for key in waiting where !lease.shards.contains(key.shard) && waitingJobs[key] != nil {
            keys.append(key)
            if !waitingJobs[key]!.reportTo.contains(lease.primary) { waitingJobs[key]!.reportTo.append(lease.primary) }
        }
        let answer = PeerMessage.released(epoch: lease.epoch, service: service, holding: lease.shards, running: keys.sorted())
        return [.send(answer, to: lease.primary)]
    }

    /// Sends an outcome to whoever hears it: every primary that dispatched the job (each relays it
    /// to entry nodes the executor does not know of) and every entry node its dispatches named. A
    /// process that is both gets one frame, which its engine hands to both parts.
    static func send(_ result: PeerMessage, primaries: [NodeAddress], entries: [NodeAddress], into out: inout [JobDirective]) {
        for primary in primaries { out.append(.send(result, to: primary)) }
        for entry in entries where !primaries.contains(entry) { out.append(.send(result, to: entry)) }
    }
}

extension JobRunner.Accepted {
    /// Another dispatch of the same key (from `peer`, at `epoch`, naming `entry`) joins this one.
    mutating func attach(_ peer: NodeAddress, epoch dispatchEpoch: UInt64, entry: NodeAddress) {
        if !reportTo.contains(peer) { reportTo.append(peer) }
        if !entries.contains(entry) { entries.append(entry) }
        epoch = max(epoch, dispatchEpoch)
    }
}
