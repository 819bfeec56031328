import DequeModule
import Logging
import StarlingCore
import StarlingUV

/// A worker's jobs: the shell around the core's `JobEngine` (docs/HANDBOOK.md, "The job path").
/// It hands the engine client requests, peer frames, lost links, frames `PeerLinks` could not
/// send, ticks, the membership record and handler outcomes, and carries out its directives:
/// answers to clients, frames to peers, handler runs. It decides nothing. Loop-confined.
final class JobPlane {
    private let loop: EventLoop
    private let links: PeerLinks
    private let handler: any JobHandler
    private let answerClient: (ClientID, ClientResponse) -> Void
    private(set) var engine: JobEngine
    private var handlerRuns: [JobKey: any RunningJob] = [:]
    private let metrics: NodeMetrics
    /// The dashboard's jobs/s and p99, counted with the metrics.
    private let rates: JobRateWindow
    /// The jobs of this entry node's clients not answered yet: their service, first submit time
    /// and how many answers are still owed (a client may submit a key again before its answer).
    /// One flat table: nested tables per client cost allocations on every update.
    private var submittedAt: [SubmittedJob.ID: SubmittedJob] = [:]

    init(
        loop: EventLoop, address: NodeAddress, definition: ServiceDefinition, links: PeerLinks, metrics: NodeMetrics,
        rates: JobRateWindow, logger: Logger, answerClient: @escaping (ClientID, ClientResponse) -> Void
    ) {
        self.loop = loop
        self.metrics = metrics
        self.rates = rates
        self.links = links
        self.answerClient = answerClient
        handler = makeHandler(for: definition, loop: loop)
        var config = JobEngine.Config()
        config.router.sizes = JobSizeLimits(definition)
        config.router.jobTimeoutMs = definition.timeoutMs
        engine = JobEngine(address: address, service: definition.service, slots: definition.concurrency, config: config)
        links.onFrameDropped = { [unowned self] message, peer in engine.frameDropped(message, to: peer) }
    }

    /// What this process reports in its heartbeats.
    var workload: Workload { engine.workload }

    /// Nothing held: no client waits on this entry node, nothing runs or waits to run here.
    var isIdle: Bool { engine.isIdle && handlerRuns.isEmpty }

    // MARK: Inputs

    func submit(service: ServiceName, key: JobKey, payload: [UInt8], client: ClientID, nowMs: Int64) {
        metrics.jobSubmitted(service: service)
        submittedAt[SubmittedJob.ID(client: client, key: key), default: SubmittedJob(service: service, atNs: EventLoop.hrtimeNs)]
            .answersOwed += 1
        perform(engine.submit(service: service, key: key, payload: payload, client: client, nowMs: nowMs))
    }

    func received(_ message: PeerMessage, from peer: NodeAddress, nowMs: Int64) {
        perform(engine.received(message, from: peer, nowMs: nowMs))
    }

    func linkLost(to peer: NodeAddress, nowMs: Int64) {
        perform(engine.linkLost(to: peer, nowMs: nowMs))
    }

    func clientGone(_ client: ClientID) {
        for id in submittedAt.keys.filter({ $0.client == client }) { submittedAt[id] = nil }
        engine.clientGone(client)
    }

    func tick(nowMs: Int64) {
        perform(engine.tick(nowMs: nowMs))
    }

    /// Stops taking work: clients are refused, dispatches declined; what is held still finishes.
    func drain() {
        engine.drain()
    }

    /// The membership record changed (or may have): its view, which the caller built (and may
    /// have kept from before).
    func follow(_ view: JobView, nowMs: Int64) {
        perform(engine.follow(view, nowMs: nowMs))
    }

    /// Stops every running handler (shutdown).
    func cancelAll() {
        for run in handlerRuns.values { run.cancel() }
    }

    // MARK: Directives

    private func perform(_ directives: [JobDirective]) {
        guard !directives.isEmpty else { return }
        for directive in directives {
            switch directive {
            case .answer(let client, let response):
                count(response, to: client)
                answerClient(client, response)
            case .send(let message, let peer):
                links.send(message, to: peer)
            case .run(let ticket, _):
                start(ticket)
            }
        }
        links.flush()
    }

    /// Counts a job's answer where its client is answered (docs/METRICS.md; the dashboard's job rate window).
    private func count(_ response: ClientResponse, to client: ClientID) {
        let key: JobKey
        let outcome: JobAnswerOutcome
        switch response {
        case .ok(let answered, _): (key, outcome) = (answered, .ok)
        case .fail(let answered, _): (key, outcome) = (answered, .fail)
        case .error(let answered?, _, _): (key, outcome) = (answered, .error)
        case .error(nil, _, _), .pong, .welcome, .status, .shards: return
        }
        guard let index = submittedAt.index(forKey: SubmittedJob.ID(client: client, key: key)) else { return }
        submittedAt.values[index].answersOwed -= 1
        let submitted = submittedAt.values[index]
        if submitted.answersOwed == 0 { submittedAt.remove(at: index) }
        let duration = Duration.nanoseconds(Int64(clamping: EventLoop.hrtimeNs &- submitted.atNs))
        metrics.jobAnswered(service: submitted.service, outcome: outcome, duration: duration)
        rates.record(service: submitted.service, duration: duration, nowMs: Int64(clamping: loop.now))
    }

    private func start(_ ticket: JobTicket) {
        let key = ticket.key, service = ticket.service
        handlerRuns[key] = handler.start(key: key, payload: ticket.payload) { [weak self] outcome in
            // A job cancelled at shutdown may report after the worker is gone.
            guard let self else { return }
            handlerRuns[key] = nil
            metrics.jobRan(service: service, outcome: outcome)
            perform(engine.finished(key, outcome: outcome, nowMs: Int64(clamping: loop.now)))
        }
    }
}

/// A job submitted at this entry node, until its client is answered.
private struct SubmittedJob {
    struct ID: Hashable {
        let client: ClientID
        let key: JobKey
    }

    let service: ServiceName
    /// `EventLoop.hrtimeNs` at its first submit.
    let atNs: UInt64
    var answersOwed = 0
}
