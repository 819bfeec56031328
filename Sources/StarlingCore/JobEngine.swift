import DequeModule

/// One process's whole job path, as a pure state machine (docs/HANDBOOK.md, "The job path").
///
/// It composes the three roles every worker plays: the entry node (`EntryJobs`: jobs its clients
/// submitted), the router (`JobRouter`: its service's queue, while primary) and the executor
/// (`JobRunner`: what it runs, behind the one fence). Every job-path input goes in — a client
/// request, a peer frame, a link lost, a frame the shell could not send, a tick, a change of the
/// record, a handler's outcome — and directives come out: answers to clients, frames to peers,
/// handler runs. Frames for this process itself are delivered here, never through the shell.
/// No clock reads, no sockets, no randomness: the shell and the simulator drive the same machine.
public struct JobEngine: Sendable {
    public struct Config: Sendable {
        public var entry = EntryJobs.Config()
        /// Also holds this service's job sizes (`router.sizes`): payloads are checked by the
        /// router, results here as they are made.
        public var router = JobRouter.Config()
        /// Outcomes kept for keys submitted, forwarded or dispatched again, in one table for the
        /// three roles (`RecentOutcomes`); kept longer than `recentTTLMs` when two overdue rounds
        /// of the service's timeout take longer.
        public var recentCapacity = 65_536
        public var recentTTLMs: Int64 = 60_000

        public init() {}
    }

    /// Where this process takes peer frames: the entry address in its tickets.
    public let address: NodeAddress
    /// The service type this process runs; `agent` runs none and takes no submissions.
    public let service: ServiceName
    /// Jobs it runs at once (its definition's `concurrency`).
    public let slots: Int
    public private(set) var isDraining = false
    private var entry: EntryJobs
    private var router: JobRouter
    private var runner: JobRunner
    private var recent: RecentOutcomes
    /// The primary of this service the runner last reported to.
    private var knownPrimary: JobView.Primary?
    /// Frames the shell could not send that go again as they are at the next tick: outcomes,
    /// refusals, declines and running lists (forwards and dispatches go back to their role).
    private var resend: Deque<(message: PeerMessage, peer: NodeAddress)> = []

    public init(address: NodeAddress, service: ServiceName, slots: Int, config: Config = Config()) {
        self.address = address
        self.service = service
        self.slots = max(1, slots)
        // A job sent again for being overdue must find its outcome where it was made, so
        // outcomes are kept past the first two resends.
        let overdueTTLMs = config.router.overdue.forwardMs(jobTimeoutMs: config.router.jobTimeoutMs, round: 1)
        recent = RecentOutcomes(capacity: config.recentCapacity, ttlMs: max(config.recentTTLMs, overdueTTLMs))
        entry = EntryJobs(address: address, config: config.entry)
        router = JobRouter(service: service, address: address, config: config.router)
        runner = JobRunner(service: service, config: JobRunner.Config(slots: slots))
    }

    // MARK: Queries

    /// What this process reports in its heartbeats. A draining process offers no slots.
    public var workload: Workload {
        Workload(
            running: UInt32(clamping: runner.runningCount), capacity: isDraining ? 0 : UInt32(clamping: slots),
            backlog: UInt32(clamping: router.backlog), jobTimeoutMs: UInt32(clamping: router.config.jobTimeoutMs))
    }

    /// Nothing held: no client waits on this entry node, nothing runs or waits to run here.
    public var isIdle: Bool { entry.pendingCount == 0 && runner.isIdle }

    /// How much it holds, by part: for status and for the simulator's bounds.
    public var holdings: Holdings {
        Holdings(
            pending: entry.pendingCount, routed: router.jobCount, queued: router.backlog,
            running: runner.runningCount, waiting: runner.waitingCount, resend: resend.count)
    }

    public struct Holdings: Hashable, Sendable {
        /// Jobs waiting at this entry node for their answer.
        public var pending: Int
        /// Jobs the router holds (queued, dispatched, or relayed after stepping down).
        public var routed: Int
        /// Jobs queued and not dispatched.
        public var queued: Int
        public var running: Int
        /// Jobs accepted by the executor, waiting for a slot.
        public var waiting: Int
        /// Frames waiting to be sent again.
        public var resend: Int

        public init(pending: Int, routed: Int, queued: Int, running: Int, waiting: Int, resend: Int) {
            self.pending = pending
            self.routed = routed
            self.queued = queued
            self.running = running
            self.waiting = waiting
            self.resend = resend
        }
    }

    /// The fencing floor of this process's executor.
    public var fence: UInt64 { runner.fence }

    /// The key shards of its own service this process holds a lease on from the primary it
    /// follows now: keys of these shards submitted here run here (docs/HANDBOOK.md, "Key
    /// shards"). Empty while it holds none.
    public var leasedShards: KeyShardSet {
        guard !isDraining, let lease = runner.lease, let primary = knownPrimary,
              lease.primary == primary.address, lease.epoch == primary.epoch else { return .none }
        return lease.shards
    }

    /// The lease epoch under which a new job of `key` runs here: its service is this process's,
    /// it holds the key's shard from the primary it follows, and a slot is free now.
    private func leaseEpoch(_ submitted: ServiceName, _ key: JobKey) -> UInt64? {
        guard let lease = runner.lease, submitted == service, runner.hasFreeSlot, leasedShards.contains(key.shard) else { return nil }
        return lease.epoch
    }

    // MARK: Inputs

    /// A client submitted a job on connection `client`.
    public mutating func submit(
        service submitted: ServiceName, key: JobKey, payload: [UInt8], client: ClientID, nowMs: Int64
    ) -> [JobDirective] {
        guard !isDraining else {
            return [.answer(client, .error(key: key, code: .unavailable, message: "this worker is draining; submit to another"))]
        }
        guard submitted != .agent else {
            return [.answer(client, .error(key: key, code: .noService, message: "agent is the reserved service type of host agents; it runs no jobs"))]
        }
        let submission = entry.submit(
            service: submitted, key: key, payload: payload, client: client, recent: recent,
            runHereUnder: leaseEpoch(submitted, key), nowMs: nowMs)
        return deliverLocally(submission, nowMs: nowMs)
    }

    /// A frame from the peer at `peer`. Scaling and connection frames are not the job path's:
    /// they give nothing here.
    public mutating func received(_ message: PeerMessage, from peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        deliverLocally(route(message, from: peer, nowMs: nowMs), nowMs: nowMs)
    }

    /// A connection to or from `peer` broke: frames either way may be lost, so each part asks
    /// again for what it waits on from there (the far end's caches make that safe).
    public mutating func linkLost(to peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        deliverLocally(entry.linkLost(to: peer, nowMs: nowMs) + router.linkLost(to: peer, nowMs: nowMs), nowMs: nowMs)
    }

    /// The shell could not send `message` to `peer` (its buffer for that peer is full). Nothing
    /// goes at once — the same link would refuse it again — but at the next tick the part it
    /// came from sends it again, or places the job again.
    public mutating func frameDropped(_ message: PeerMessage, to peer: NodeAddress) {
        switch message {
        case .forward(let ticket):
            entry.forwardDropped(JobID(service: ticket.service, key: ticket.key))
        case .dispatch(_, let ticket):
            router.dispatchDropped(ticket.key, to: peer)
        case .result, .refused, .declined, .running:
            resend.append((message, peer))
        case .lease:
            router.leaseDropped(to: peer)
        case .released:
            runner.releaseDropped()
        case .hello, .spawn, .retire, .spawnRefused:
            break
        }
    }

    /// A client connection closed. Its jobs go on: a client that reconnects and submits the same
    /// key attaches to the job, or gets its answer from the recent outcomes.
    public mutating func clientGone(_ client: ClientID) {
        entry.clientGone(client)
    }

    /// The handler finished a job started by a `.run` directive. A result over `max_result_bytes`
    /// becomes its `FAIL` here, before any frame carries it, so it never travels.
    public mutating func finished(_ key: JobKey, outcome: JobOutcome, nowMs: Int64) -> [JobDirective] {
        let outcome = router.config.sizes.checked(outcome, key: key)
        return deliverLocally(runner.finished(key, outcome: outcome, recent: &recent, nowMs: nowMs), nowMs: nowMs)
    }

    /// The periodic step: dropped frames go again, old outcomes expire, jobs that waited too long
    /// for a primary are refused.
    public mutating func tick(nowMs: Int64) -> [JobDirective] {
        recent.expire(nowMs: nowMs)
        var out = resend.map { JobDirective.send($0.message, to: $0.peer) }
        resend.removeAll()
        out += router.tick(nowMs: nowMs)
        out += runner.tick()
        out += entry.tick(nowMs: nowMs)
        return deliverLocally(out, nowMs: nowMs)
    }

    /// Stops taking work: clients are refused, dispatches declined, and the router stops placing
    /// jobs here; what is held still finishes.
    public mutating func drain() {
        isDraining = true
        runner.drain()
    }

    /// The record changed (or may have): roles, primaries, fence and executors follow it.
    public mutating func follow(_ view: JobView, nowMs: Int64) -> [JobDirective] {
        var out: [JobDirective] = []
        if let epoch = view.primaryEpoch, router.epoch != epoch {
            out += router.becamePrimary(epoch: epoch, nowMs: nowMs)
        } else if view.primaryEpoch == nil, router.epoch != nil {
            router.steppedDown()
        }
        runner.observe(epoch: view.highestEpoch)
        out += entry.update(primaries: view.primaries, nowMs: nowMs)
        if let primary = view.primaries[service] ?? nil, primary != knownPrimary {
            knownPrimary = primary
            out += runner.newPrimary(at: primary.address, epoch: primary.epoch)
        }
        // A primary dispatches to its standbys, or runs jobs itself when none has slots. A
        // draining standby keeps no slots, so what it runs is not placed again while it finishes.
        var executors = view.executors.filter { $0.address != address }
        if !executors.contains(where: { $0.slots > 0 }) && !isDraining && view.primaryEpoch != nil {
            executors.append(JobRouter.Executor(address: address, slots: slots))
        }
        out += router.update(executors: executors, nowMs: nowMs)
        return deliverLocally(out, nowMs: nowMs)
    }

    /// `follow` with the view of `membership`'s record.
    public mutating func follow(_ membership: Membership, nowMs: Int64) -> [JobDirective] {
        follow(JobView(membership, nowMs: nowMs), nowMs: nowMs)
    }

    // MARK: Internals

    /// Which part a frame is for.
    private mutating func route(_ message: PeerMessage, from peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        switch message {
        case .forward, .running, .released:
            return router.received(message, from: peer, recent: &recent, nowMs: nowMs)
        case .declined:
            // To the router that dispatched the job; and to the entry when this process's own
            // executor would not take a job the entry dispatched to it under its lease.
            return router.received(message, from: peer, recent: &recent, nowMs: nowMs)
                + (peer == address ? entry.received(message, recent: &recent, nowMs: nowMs) : [])
        case .dispatch:
            return runner.received(message, from: peer, recent: recent)
        case .lease(let epoch, let leasedService, let shards):
            guard leasedService == service else { return [] }
            return runner.leased(shards, epoch: epoch, from: peer)
        case .result, .refused:
            // A result: to the router if it dispatched the job (it relays), to the entry if it
            // holds it. A refusal: from an executor, to the router that dispatched the job (it
            // tells the entry nodes); from a primary, to the entry that holds it.
            return router.received(message, from: peer, recent: &recent, nowMs: nowMs)
                + entry.received(message, recent: &recent, nowMs: nowMs)
        case .hello, .spawn, .retire, .spawnRefused:
            return []
        }
    }

    /// Frames to this process itself are handled here, in order; the rest goes to the shell.
    private mutating func deliverLocally(_ directives: [JobDirective], nowMs: Int64) -> [JobDirective] {
        guard directives.contains(where: { if case .send(_, address) = $0 { true } else { false } }) else {
            return directives
        }
        var out: [JobDirective] = []
        var queue = Deque(directives)
        while let directive = queue.popFirst() {
            if case .send(let message, address) = directive {
                queue.append(contentsOf: route(message, from: address, nowMs: nowMs))
            } else {
                out.append(directive)
            }
        }
        return out
    }
}
