/// The entry node's side of jobs (docs/HANDBOOK.md, "The job path"): it keeps every job a client
/// submitted here until that client has its answer, forwards it to its service's primary, and
/// forwards it again when the primary changes (a new one, or the same one at a new epoch), when
/// the link to it breaks, or when the shell could not send the forward. The primary de-duplicates
/// by key, so forwarding again is always safe; answers are de-duplicated here, so a client hears
/// once per key. Part of `JobEngine`.
public struct EntryJobs: Sendable {
    public struct Config: Sendable {
        /// Jobs waiting for an answer at this entry node, over all clients; beyond it, `BUSY`.
        public var maxPending = 65_536
        /// How long a job waits for its service to have a primary before `UNAVAILABLE`.
        public var unavailableAfterMs: Int64 = 5_000
        /// When a forward with no answer goes again.
        public var overdue = JobOverdue()

        public init() {}
    }

    /// A job waiting for its answer.
    struct Pending: Sendable {
        var ticket: JobTicket
        var clients: [ClientID]
        /// The primary it was last forwarded to; nil while it waits for one.
        var forwardedTo: JobView.Primary?
        /// The shell could not send the last forward: it goes again at the next tick.
        var forwardDropped = false
        /// Since when it has waited without a primary to go to.
        var waitingSinceMs: Int64
        /// When its forward last went, and how often it went again for being overdue.
        var forwardedAtMs: Int64
        var overdueRounds = 0
        /// It runs at this process under its lease on the key's shard (docs/HANDBOOK.md, "Key
        /// shards"): it is not forwarded, and its outcome comes from here.
        var runsHere = false

        /// Records that the forward goes now.
        mutating func forwarded(nowMs: Int64) {
            forwardedAtMs = nowMs
            forwardDropped = false
        }
    }

    public let config: Config
    /// Where this process accepts peer frames: the entry address written into every ticket.
    public let address: NodeAddress
    private var pending: [JobID: Pending] = [:]
    /// Every service type in the record and its primary, if it has one now.
    private var services: [ServiceName: JobView.Primary?] = [:]

    public init(address: NodeAddress, config: Config = Config()) {
        self.address = address
        self.config = config
    }

    public var pendingCount: Int { pending.count }

    /// A client submitted a job; a key `recent` knows gets its answer at once. With
    /// `runHereUnder`, the epoch of this process's lease on the key's shard, a new job is
    /// dispatched to this process itself under that epoch instead of forwarded.
    public mutating func submit(
        service: ServiceName, key: JobKey, payload: [UInt8], client: ClientID, recent: RecentOutcomes,
        runHereUnder leaseEpoch: UInt64? = nil, nowMs: Int64
    ) -> [JobDirective] {
        let id = JobID(service: service, key: key)
        func conflict() -> JobDirective { .answer(client, .error(key: key, code: .badRequest, message: PayloadDigest.conflictMessage)) }
        switch recent.recall(id, payload: payload) {
        case .answered(let outcome): return [.answer(client, outcome.response(for: key))]
        case .otherPayload: return [conflict()]
        case nil: break
        }
        if let job = pending[id] {
            guard job.ticket.payload == payload else { return [conflict()] }
            if !pending[id]!.clients.contains(client) { pending[id]!.clients.append(client) }
            return []
        }
        guard let primary = services[service] else {
            return [.answer(client, .error(key: key, code: .noService, message: "no worker of service \(service.value) is known"))]
        }
        guard pending.count < config.maxPending else {
            return [.answer(client, .error(key: key, code: .busy, message: "\(config.maxPending) jobs already wait at this node"))]
        }
        let ticket = JobTicket(service: service, key: key, entry: address, payload: payload)
        pending[id] = Pending(ticket: ticket, clients: [client], forwardedTo: primary, waitingSinceMs: nowMs, forwardedAtMs: nowMs)
        if let leaseEpoch {
            pending[id]!.runsHere = true
            return [.send(.dispatch(epoch: leaseEpoch, ticket: ticket), to: address)]
        }
        guard let primary else { return [] }
        return [.send(.forward(ticket), to: primary.address)]
    }

    /// The record changed: `primaries` holds every service type with members, and the primary of
    /// each where there is one. Jobs whose primary changed are forwarded to the new one; a primary
    /// at a new epoch counts as new (it may have stepped down and back, dropping its queue).
    public mutating func update(primaries: [ServiceName: JobView.Primary?], nowMs: Int64) -> [JobDirective] {
        guard primaries != services else { return [] }
        services = primaries
        var out: [JobDirective] = []
        for (id, job) in pending {
            let primary = primaries[id.service] ?? nil
            guard primary != job.forwardedTo else { continue }
            pending[id]!.forwardedTo = primary
            pending[id]!.overdueRounds = 0
            if job.runsHere { continue }
            if let primary {
                pending[id]!.forwarded(nowMs: nowMs)
                out.append(.send(.forward(job.ticket), to: primary.address))
            } else {
                pending[id]!.waitingSinceMs = nowMs
            }
        }
        return out
    }

    /// The connection to or from `peer` broke: frames either way may be lost. A forward to it
    /// goes again (to the same primary if it is still the primary; it attaches the job to what it
    /// already has). So does every other job waiting here: its outcome comes straight from
    /// whichever executor ran it, which may be `peer`, and the primary, which does not relay
    /// what that executor sent itself, answers a forward again from its recent outcomes.
    public mutating func linkLost(to peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        var out: [JobDirective] = []
        for (id, job) in pending where !job.runsHere {
            guard let primary = job.forwardedTo else { continue }
            pending[id]!.forwarded(nowMs: nowMs)
            out.append(.send(.forward(job.ticket), to: primary.address))
        }
        return out
    }

    /// The shell could not send the forward of `id`: it goes again at the next tick, to whoever
    /// is primary then (not at once: the link that refused it is likely still full).
    public mutating func forwardDropped(_ id: JobID) {
        pending[id]?.forwardDropped = true
    }

    /// A frame from a primary about one of our jobs; an outcome goes into `recent`.
    public mutating func received(_ message: PeerMessage, recent: inout RecentOutcomes, nowMs: Int64) -> [JobDirective] {
        switch message {
        case .result(_, let service, let key, let outcome):
            let id = JobID(service: service, key: key)
            guard let job = pending.removeValue(forKey: id) else { return [] }  // answered already
            recent.remember(outcome, for: id, payload: job.ticket.payload, nowMs: nowMs)
            let response = outcome.response(for: key)
            return job.clients.map { .answer($0, response) }
        case .refused(let service, let key, let code, let message):
            guard let job = pending.removeValue(forKey: JobID(service: service, key: key)) else { return [] }
            return job.clients.map { .answer($0, .error(key: key, code: code, message: message)) }
        case .declined(_, let service, let key, _):
            // This process's own executor would not run it here after all: the primary places it.
            let id = JobID(service: service, key: key)
            guard let job = pending[id], job.runsHere else { return [] }
            pending[id]!.runsHere = false
            pending[id]!.waitingSinceMs = nowMs
            guard let primary = job.forwardedTo else { return [] }
            pending[id]!.forwarded(nowMs: nowMs)
            return [.send(.forward(job.ticket), to: primary.address)]
        default:
            return []
        }
    }

    /// A client connection closed. Its jobs go on: a client that reconnects and submits the same
    /// key attaches to the job, or gets its answer from the recent outcomes.
    public mutating func clientGone(_ client: ClientID) {
        for (id, job) in pending where job.clients.contains(client) {
            pending[id]!.clients.removeAll { $0 == client }
        }
    }

    /// The periodic step: forwards the shell dropped, and forwards overdue (`JobOverdue`), go again;
    /// jobs that waited too long for a primary are refused.
    public mutating func tick(nowMs: Int64) -> [JobDirective] {
        var out: [JobDirective] = []
        for (id, job) in pending where !job.runsHere {
            guard let primary = job.forwardedTo else { continue }
            if !job.forwardDropped {
                let timeout = primary.jobTimeoutMs > 0 ? primary.jobTimeoutMs : ServiceDefinition.defaultTimeoutMs
                guard nowMs - job.forwardedAtMs >= config.overdue.forwardMs(jobTimeoutMs: timeout, round: job.overdueRounds) else { continue }
                pending[id]!.overdueRounds += 1
            }
            pending[id]!.forwarded(nowMs: nowMs)
            out.append(.send(.forward(job.ticket), to: primary.address))
        }
        for (id, job) in pending where job.forwardedTo == nil && !job.runsHere && nowMs - job.waitingSinceMs >= config.unavailableAfterMs {
            pending[id] = nil
            let message = "service \(id.service.value) has had no primary for \(config.unavailableAfterMs) ms"
            out += job.clients.map { .answer($0, .error(key: id.key, code: .unavailable, message: message)) }
        }
        return out
    }
}
