import DequeModule
import Logging
import StarlingCore
import StarlingUV

/// A worker's jobs: the shell around the core's `EntryJobs`, `JobRouter` and `JobRunner`
/// (DESIGN.md §3). It feeds them client requests, peer frames and the membership record, and
/// carries out their directives: answers to clients, frames to peers (or to itself, handled at
/// once), and handler runs. Loop-confined.
final class JobPlane {
    let address: NodeAddress
    let definition: ServiceDefinition
    private let loop: EventLoop
    private let logger: Logger
    private let links: PeerLinks
    private let handler: any JobHandler
    private let answerClient: (ClientID, ClientResponse) -> Void
    private var entry: EntryJobs
    private var router: JobRouter
    private var runner: JobRunner
    private var handlerRuns: [JobKey: any RunningJob] = [:]
    /// The primary of our service the runner last reported to.
    private var knownPrimary: (address: NodeAddress, epoch: UInt64)?
    private var isDraining = false

    init(
        loop: EventLoop, address: NodeAddress, definition: ServiceDefinition, links: PeerLinks, logger: Logger,
        answerClient: @escaping (ClientID, ClientResponse) -> Void
    ) {
        self.loop = loop
        self.address = address
        self.definition = definition
        self.links = links
        self.logger = logger
        self.answerClient = answerClient
        handler = makeHandler(for: definition, loop: loop)
        entry = EntryJobs(address: address)
        router = JobRouter(service: definition.service)
        runner = JobRunner(service: definition.service, config: .init(slots: definition.concurrency))
    }

    /// What this process reports in its heartbeats. A draining process offers no slots.
    var workload: Workload {
        Workload(
            running: UInt32(clamping: runner.runningCount), capacity: isDraining ? 0 : UInt32(clamping: definition.concurrency),
            backlog: UInt32(clamping: router.backlog))
    }

    /// Nothing held: no client waits on this entry node, nothing runs or waits to run here.
    var isIdle: Bool { entry.pendingCount == 0 && runner.isIdle && handlerRuns.isEmpty }

    // MARK: Inputs

    func submit(service: ServiceName, key: JobKey, payload: [UInt8], client: ClientID, nowMs: Int64) {
        guard !isDraining else {
            answerClient(client, .error(key: key, code: .unavailable, message: "this worker is draining; submit to another"))
            return
        }
        guard service != .agent else {
            answerClient(client, .error(key: key, code: .noService, message: "agent is the reserved service type of host agents; it runs no jobs"))
            return
        }
        perform(entry.submit(service: service, key: key, payload: payload, client: client, nowMs: nowMs), nowMs: nowMs)
    }

    func received(_ message: PeerMessage, from peer: NodeAddress, nowMs: Int64) {
        perform(deliver(message, from: peer, nowMs: nowMs), nowMs: nowMs)
    }

    func linkLost(to peer: NodeAddress, nowMs: Int64) {
        perform(entry.linkLost(to: peer) + router.linkLost(to: peer), nowMs: nowMs)
    }

    func clientGone(_ client: ClientID) {
        entry.clientGone(client)
    }

    func tick(nowMs: Int64) {
        router.tick(nowMs: nowMs)
        runner.tick(nowMs: nowMs)
        perform(entry.tick(nowMs: nowMs), nowMs: nowMs)
    }

    /// Stops taking work: clients are refused, dispatches declined; what is held still finishes.
    func drain() {
        isDraining = true
        runner.drain()
    }

    /// The membership record changed (or may have): roles, primaries and executors follow it.
    func follow(_ membership: Membership, nowMs: Int64) {
        var out: [JobDirective] = []
        let service = definition.service
        // Our own role.
        if membership.status == .primary, router.epoch != membership.epoch {
            out += router.becamePrimary(epoch: membership.epoch)
        } else if membership.status != .primary, router.epoch != nil {
            router.steppedDown()
        }
        runner.observe(epoch: membership.highestEpoch[service, default: 0])
        // Where each service's jobs go.
        var primaries: [ServiceName: NodeAddress?] = [service: nil]
        for member in membership.members.values where primaries[member.service] == nil {
            primaries[member.service] = .some(nil)
        }
        for name in Array(primaries.keys) {
            primaries[name] = .some(membership.primary(of: name, nowMs: nowMs)?.address)
        }
        out += entry.update(primaries: primaries, nowMs: nowMs)
        // The primary our runner reports to.
        if let primary = membership.primary(of: service, nowMs: nowMs),
           knownPrimary?.address != primary.address || knownPrimary?.epoch != primary.epoch {
            knownPrimary = (primary.address, primary.epoch)
            out += runner.newPrimary(at: primary.address, epoch: primary.epoch)
        }
        // Whom a primary dispatches to: its standbys, or itself when it has none. A draining
        // standby stays with no slots, so what it runs is not dispatched again while it finishes.
        if router.epoch != nil {
            var executors = membership.members.values
                .filter { $0.service == service && ($0.status == .standby || $0.status == .toBecomePrimary) }
                .map { JobRouter.Executor(address: $0.address, slots: $0.leaving ? 0 : Int($0.workload.capacity)) }
            if !executors.contains(where: { $0.slots > 0 }) && !isDraining {
                executors.append(JobRouter.Executor(address: address, slots: definition.concurrency))
            }
            out += router.update(executors: executors)
        }
        perform(out, nowMs: nowMs)
    }

    /// Stops every running handler (shutdown).
    func cancelAll() {
        for run in handlerRuns.values { run.cancel() }
    }

    // MARK: Directives

    /// A frame for this process, from a peer or from itself.
    private func deliver(_ message: PeerMessage, from peer: NodeAddress, nowMs: Int64) -> [JobDirective] {
        switch message {
        case .forward, .declined, .running:
            return router.received(message, from: peer, nowMs: nowMs)
        case .dispatch:
            return runner.received(message, from: peer, nowMs: nowMs)
        case .result:
            // To the router if it dispatched the job (it relays), to the entry if it holds it.
            return router.received(message, from: peer, nowMs: nowMs) + entry.received(message, nowMs: nowMs)
        case .refused:
            return entry.received(message, nowMs: nowMs)
        case .hello, .spawn, .retire, .spawnRefused:
            return []  // membership and scaling frames: the worker handles them
        }
    }

    private func perform(_ directives: [JobDirective], nowMs: Int64) {
        guard !directives.isEmpty else { return }
        var queue = Deque(directives)
        while let directive = queue.popFirst() {
            switch directive {
            case .answer(let client, let response):
                answerClient(client, response)
            case .send(let message, let peer):
                if peer == address {
                    queue.append(contentsOf: deliver(message, from: address, nowMs: nowMs))
                } else {
                    links.send(message, to: peer)
                }
            case .run(let ticket):
                start(ticket)
            }
        }
        links.flush()
    }

    private func start(_ ticket: JobTicket) {
        let key = ticket.key
        handlerRuns[key] = handler.start(payload: ticket.payload) { [weak self] outcome in
            // A job cancelled at shutdown may report after the worker is gone.
            guard let self else { return }
            handlerRuns[key] = nil
            let now = Int64(clamping: loop.now)
            perform(runner.finished(key, outcome: outcome, nowMs: now), nowMs: now)
        }
    }
}
