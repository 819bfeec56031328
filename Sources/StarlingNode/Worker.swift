#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import StarlingCore
import StarlingUV

/// One worker process: the shell around `Membership` and the job plane (docs/HANDBOOK.md, "Shell").
///
/// It owns the event loop, the tick timer and the signal watchers, and wires the parts that do the
/// I/O: `HeartbeatChannel` (UDP), `ConnectionAcceptor` (the TCP port, shared by peers and clients),
/// `ClientRequestHandler`, `InboundPeerConnections`, `PeerLinks` and `JobPlane`. Here stay the
/// lifecycle (start, drain, stop), the membership directives and the scaling frames. Events go
/// into the core; the core's directives come back out as datagrams, frames, answers and log lines.
/// Nothing here blocks the loop. Loop-confined: create it, `run()` it and drop it on one thread.
public final class Worker {
    public let id: NodeID
    /// The real bound address: UDP heartbeats and TCP clients.
    public let address: NodeAddress
    /// Where `--http` listens, once bound; nil without it.
    public var httpAddress: NodeAddress? { http?.address }

    private let settings: WorkerSettings
    /// Cluster keys and client tokens, re-read on SIGHUP.
    private let secrets: NodeSecrets
    private let logger: Logger
    private let loop: EventLoop
    private let heartbeats: HeartbeatChannel
    private let server: TCPServer
    private let acceptor: ConnectionAcceptor
    private let ticker: Timer
    private var signals: [Signal] = []
    private var membership: Membership
    /// Whether the `--join` seeds ever answered; warns while none did.
    private var seedSilence: SeedSilence
    /// Resolves the `--join` host names, again every announce round.
    private let seedResolver: SeedResolver
    private let peers: InboundPeerConnections
    private let links: PeerLinks
    /// Set in `init`, once `self` can be captured: their callbacks come back here.
    private var jobs: JobPlane!
    private var clients: ClientRequestHandler!
    private let role: WorkerRole
    /// The agent's part, when this process runs `starling up`.
    private var agent: HostAgent?
    private var drainTimer: Timer?
    private var drainDeadlineMs: Int64 = 0
    private var isDraining = false
    /// Rejected input of every kind, counted for `STATUS`.
    private let rejections: RejectionRecorder
    /// Local failures (send, receive, accept, peer links) are only logged (rate-limited), never
    /// reported as rejected input.
    private let ioProblems: RejectionRecorder
    private var isStopping = false
    private struct JobViewKey: Equatable {
        var recordVersion: UInt64
        var jobTimeoutMs: UInt32
    }
    private var cachedJobView: (key: JobViewKey, view: JobView)?
    private var followedKey: JobViewKey?
    private var didRun = false
    /// What `GET /metrics` shows (docs/METRICS.md).
    private let metrics = NodeMetrics()
    /// The operator's endpoints, with `--http`.
    private var http: HTTPServer?
    /// The dashboard's jobs/s and p99 (docs/HANDBOOK.md, "job rate window").
    private let rates = JobRateWindow()
    /// What the dashboard lists as it happened (docs/HANDBOOK.md, "event timeline").
    private let timeline = EventTimeline()

    /// Creates the loop and binds the shared port; nothing runs until `run()`.
    public init(settings: WorkerSettings, role: WorkerRole, secrets: NodeSecrets, logger: Logger) throws(UVError) {
        // Identity is drawn here, in the shell: it needs the wall clock and system randomness,
        // which the core never reads. First, so that every line this process logs names it.
        var rng = SystemRandomNumberGenerator()
        let id = NodeID(admittedAtUnixMs: Self.wallClockMs(), using: &rng)
        self.id = id
        var stamped = logger
        stamped[metadataKey: JSONLogHandler.nodeKey] = "\(id)"
        let logger = stamped
        self.settings = settings
        self.secrets = secrets
        self.role = role
        self.logger = logger
        loop = try EventLoop()
        rejections = RejectionRecorder(loop: loop, logger: logger)
        ioProblems = RejectionRecorder(loop: loop, logger: logger, burst: 5)
        let acceptor = ConnectionAcceptor(
            router: .standard, limits: settings.connections, loop: loop, logger: logger, rejections: rejections,
            ioProblems: ioProblems)
        let binding: SharedPortBinding
        let ticker: Timer
        do throws(UVError) {
            binding = try SharedPortBinding.bind(
                loop: loop, host: settings.host, port: settings.port, logger: logger,
                onConnection: { acceptor.accept($0) })
            do throws(UVError) {
                ticker = try Timer(loop: loop)
            } catch {
                binding.udp.close()
                binding.server.close()
                throw error
            }
            do throws(UVError) {
                if let address = settings.httpAddress {
                    http = try HTTPServer(at: address, loop: loop, limits: settings.httpLimits, rejections: rejections)
                }
            } catch {
                ticker.close()
                binding.udp.close()
                binding.server.close()
                throw error
            }
        } catch {
            try? loop.close()
            throw error
        }
        acceptor.limit(binding.server)
        self.acceptor = acceptor
        self.ticker = ticker
        server = binding.server
        address = binding.address
        heartbeats = HeartbeatChannel(
            udp: binding.udp, loop: loop, selfID: id, selfAddress: binding.address, intervalMs: settings.intervalMs,
            secrets: secrets, rejections: rejections, ioProblems: ioProblems)
        membership = Membership(config: settings.membershipConfig(address: binding.address), id: id)
        seedSilence = SeedSilence(seeds: settings.joins.map(\.description), intervalMs: settings.intervalMs)
        // Names are looked up again as often as the core announces itself to its seeds once
        // admitted (every `probeEveryTicks` intervals), at most twice a second.
        let config = membership.config
        seedResolver = SeedResolver(
            loop: loop, joins: settings.joins, family: binding.address.socketAddress.isIPv6 ? .ipv6 : .ipv4,
            roundMs: max(500, Int64(config.probeEveryTicks) * config.intervalMs), logger: logger)
        links = PeerLinks(
            loop: loop, sender: id, address: binding.address, secrets: secrets, rejections: rejections,
            stallTimeoutMs: Int(settings.connections.peerStallTimeoutMs))
        peers = InboundPeerConnections(secrets: secrets, rejections: rejections)
        let definition: ServiceDefinition
        switch role {
        case .worker(let own):
            definition = own
        case .agent(let agentSettings):
            // An agent runs no jobs of its own service type: clients cannot submit to `agent`.
            definition = ServiceDefinition(service: .agent, handler: .builtin(.echo), concurrency: 1)
            agent = HostAgent(
                settings: agentSettings, loop: loop, member: settings,
                address: binding.address, links: links, logger: logger)
        }
        jobs = JobPlane(
            loop: loop, address: binding.address, definition: definition, links: links, metrics: metrics, rates: rates,
            logger: logger,
            answerClient: { [unowned self] client, response in clients.deliver(response, to: client) })
        clients = ClientRequestHandler(
            selfID: id, loop: loop, settings: settings, secrets: secrets, jobs: jobs, rejections: rejections, logger: logger,
            record: { [unowned self] in membership })
        membership.workload = workload
        agent?.onScalerDecision = { [unowned self] kind, service, detail in
            metrics.scalerDecided(kind)
            note(.scaler, service: service, detail: "\(kind): \(detail)")
        }
        http?.route = { [unowned self] in serve($0) }
        links.onLinkLost = { [unowned self] peer in
            logger.info("peer link lost", metadata: ["peer": "\(peer)"])
            jobs.linkLost(to: peer, nowMs: nowMs)
        }
        links.isWanted = { [unowned self] peer in
            membership.members.values.contains { $0.address == peer }
        }
        links.onProblem = { [unowned self] reason, detail in ioProblems.record(reason, detail: detail, level: .info) }
        peers.onMessage = { [unowned self] message, peer in received(message, from: peer) }
        seedResolver.onResolved = { [unowned self] addresses in
            guard !isStopping else { return }
            perform(membership.seedsResolved(addresses, nowMs: nowMs))
        }
        peers.onSuperseded = { [unowned self] peer in
            ioProblems.record(
                "peer_link_superseded",
                detail: "\(peer) opened a new peer link: closing its older one (what was in flight on it is asked for again)",
                level: .info)
        }
        peers.onClosed = { [unowned self] peer in
            // Frames from it may have been lost on the way: the core asks again where it must.
            if !isStopping { jobs.linkLost(to: peer, nowMs: nowMs) }
        }
        acceptor.onRouted = { [unowned self] kind, stream, initialBytes in
            switch kind {
            case .sealedPeerFrames: peers.acceptSealed(stream, initialBytes: initialBytes)
            case .peerFrames: peers.accept(stream, initialBytes: initialBytes)
            case .clientLines: clients.accept(stream, initialBytes: initialBytes)
            }
        }
    }

    deinit {
        assert(!didRun || isStopping, "Worker dropped while running")
    }

    /// Runs until SIGINT or SIGTERM, then leaves the group, closes every handle and the loop.
    public func run() throws(UVError) {
        precondition(!didRun, "Worker.run() called twice")
        didRun = true
        do {
            try startHandles()
        } catch {
            logger.error("cannot start: \(error)")
            closeEverything()
            loop.run()
            try loop.close()
            throw error
        }
        logger.info(
            "listening on \(address)",
            metadata: ["id": "\(id)", "service": "\(settings.service)", "priority": "\(settings.priority)",
                       "interval_ms": "\(settings.intervalMs)",
                       "suspect_after_ms": "\(membership.config.suspectAfterMs)",
                       "seeds": "\(settings.joins.map(\.description).joined(separator: ","))"])
        loop.run()
        try loop.close()
        logger.info("stopped", metadata: ["id": "\(id)"])
    }

    // MARK: Lifecycle

    private func startHandles() throws(UVError) {
        // A parent may have started us with signals blocked (the mask is inherited across exec):
        // SIGINT/SIGTERM blocked would make a graceful stop impossible, SIGCHLD blocked would hide
        // the exit of every handler process from libuv.
        var nothing = sigset_t()
        sigemptyset(&nothing)
        pthread_sigmask(SIG_SETMASK, &nothing, nil)
        for number in [SIGINT, SIGTERM] {
            let signal = try Signal(loop: loop)
            signals.append(signal)
            try signal.start(signal: number) { [unowned self] number in stop(signal: number) }
        }
        let hangUp = try Signal(loop: loop)
        signals.append(hangUp)
        try hangUp.start(signal: SIGHUP) { [unowned self] _ in reload() }
        try heartbeats.start { [unowned self] heartbeat in
            guard !isStopping else { return }
            perform(membership.receive(heartbeat, nowMs: nowMs))
            if membership.startsTick(heartbeat, nowMs: nowMs) { tick() }
        }
        try scheduleTick()
        try http?.start()
        perform(membership.start(nowMs: nowMs))
        seedResolver.tick(nowMs: nowMs)
    }

    // MARK: Ticks

    /// How much later than an interval the timer fires where ticks come with the primary's
    /// heartbeat (`Membership.startsTick`): the timer only stands in when that is late.
    static let beatGraceMs: UInt64 = 2

    /// Starts the timer for the next tick: one interval from now, and `beatGraceMs` more where
    /// ticks come with the primary's heartbeat, so that it, not the timer, normally comes first.
    private func scheduleTick() throws(UVError) {
        let interval = UInt64(settings.intervalMs)
        try ticker.start(afterMs: membership.ticksOnPrimaryBeat ? interval + Self.beatGraceMs : interval) { [unowned self] in
            tick()
        }
    }

    private func tick() {
        if let parent = settings.parentPID, getppid() != parent {
            beginDrain(reason: "its parent process \(parent) is gone")
        }
        membership.workload = workload
        perform(membership.tick(nowMs: nowMs))
        // A primary's router takes back, with a follow, an executor it set aside after a
        // decline; elsewhere a follow of an unchanged view does nothing.
        if !isStopping && membership.status == .primary { followRecord(everyTick: true) }
        jobs.tick(nowMs: nowMs)
        for failover in metrics.follow(membership, nowMs: nowMs) {
            note(.failover, service: failover.service, member: failover.to,
                 detail: "primary \(failover.from) -> \(failover.to) (epoch \(failover.epoch))",
                 durationMs: failover.durationMs)
        }
        scale()
        seedResolver.tick(nowMs: nowMs)
        warnIfNoSeedAnswered()
        // Closed once stopping: no next tick. Otherwise the timer is open and cannot refuse, but
        // a worker that stopped ticking would be dead to its peers: say so if it ever does.
        guard !isStopping else { return }
        do { try scheduleTick() } catch {
            ioProblems.record("tick_timer", detail: "the tick timer did not start again: \(error)", level: .error)
        }
    }

    /// The first SIGINT/SIGTERM drains: no new clients or jobs, step down and say goodbye so peers
    /// re-elect at once, then wait until every job held here is answered or handed back (at most
    /// `drainTimeoutMs`). A second signal stops at once.
    private func stop(signal number: Int32) {
        guard !isStopping else { return }
        guard !isDraining else {
            logger.notice("stopping now on a second signal \(number)")
            finishStopping()
            return
        }
        beginDrain(reason: "signal \(number)")
    }

    private func beginDrain(reason: String) {
        guard !isDraining, !isStopping else { return }
        logger.notice("draining", metadata: ["reason": "\(reason)", "status": "\(membership.status)"])
        isDraining = true
        // The server stays open: peers bring the outcomes of the jobs still held here.
        clients.drain()
        jobs.drain()
        agent?.stopWorkers()
        membership.workload = workload
        perform(membership.drain(nowMs: nowMs))
        drainDeadlineMs = nowMs + settings.drainTimeoutMs
        do {
            let timer = try Timer(loop: loop)
            drainTimer = timer
            try timer.start(afterMs: 10, repeatMs: 10) { [unowned self] in
                let idle = jobs.isIdle && (agent?.workerCount ?? 0) == 0
                guard idle || nowMs >= drainDeadlineMs else { return }
                if !idle {
                    logger.warning("drain timed out", metadata: [
                        "jobs_held": "\(!jobs.isIdle)", "workers": "\(agent?.workerCount ?? 0)"])
                    agent?.killWorkers()
                }
                finishStopping()
            }
        } catch {
            finishStopping()
        }
    }

    /// Closes every handle; the loop then runs dry. The goodbyes keep the UDP socket open until
    /// they are out.
    private func finishStopping() {
        isStopping = true
        drainTimer?.close()
        ticker.close()
        seedResolver.close()
        for signal in signals { signal.close() }
        server.close()
        acceptor.close()
        http?.close()
        jobs.cancelAll()
        clients.finishAll()
        peers.closeAll()
        links.closeAll()
        heartbeats.close { if !membership.isLeaving { perform(membership.leave(nowMs: nowMs)) } }
    }

    /// Closes every handle at once (start-up failure).
    private func closeEverything() {
        isStopping = true
        ticker.close()
        seedResolver.close()
        for signal in signals { signal.close() }
        server.close()
        acceptor.close()
        http?.close()
        heartbeats.close()
    }

    private var nowMs: Int64 { Int64(clamping: loop.now) }

    /// What the heartbeats carry: a worker's job load, or an agent's hosted workers and headroom.
    private var workload: Workload {
        agent?.workload(draining: isDraining) ?? jobs.workload
    }

    private static func wallClockMs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }

    /// SIGHUP: re-reads the key and token files; an agent also reloads its service definitions
    /// and passes the signal on to its workers. A file that fails keeps what it held; a process
    /// without such files has nothing to reload. It never stops the process.
    private func reload() {
        guard !isStopping else { return }
        let problems = secrets.reload()
        for problem in problems { logger.error("SIGHUP: kept the previous secrets: \(problem)") }
        if problems.isEmpty {
            logger.notice("SIGHUP: reloaded", metadata: [
                "cluster_keys": "\(secrets.clusterKeys?.all.count ?? 0)",
                "client_tokens": "\(secrets.clientTokenFile == nil ? "off" : "on")"])
        }
        agent?.reloadDefinitions()
        agent?.forwardHangUp()
    }

    // MARK: Membership

    /// Lets the job plane follow the record when its view moved, and with `everyTick` whatever it
    /// holds.
    private func followRecord(everyTick: Bool = false) {
        let view = jobView()
        guard everyTick || cachedJobView?.key != followedKey else { return }
        followedKey = cachedJobView?.key
        jobs.follow(view, nowMs: nowMs)
    }

    /// The job path's view of the record, built again only when the record may have moved
    /// (`Membership.recordVersion`, which moves with everything `JobView` reads of the record and
    /// of this process's role, and this process's own job timeout). Building it walks and sorts
    /// the record, and it is taken after every datagram: rebuilt each time, it was 40 % of an idle
    /// worker's CPU among 150 (docs/HANDBOOK.md, "Membership").
    private func jobView() -> JobView {
        let key = JobViewKey(recordVersion: membership.recordVersion, jobTimeoutMs: membership.workload.jobTimeoutMs)
        if let cached = cachedJobView, cached.key == key { return cached.view }
        let view = JobView(membership, nowMs: nowMs)
        cachedJobView = (key, view)
        return view
    }

    /// Carries out the core's directives, then lets the job plane follow the record.
    private func perform(_ directives: [MembershipDirective]) {
        defer { if !isStopping { followRecord() } }
        for directive in directives {
            switch directive {
            case .send(let heartbeat, let targets):
                heartbeats.send(heartbeat, to: targets)
            case .statusChanged(let from, let to, let epoch, let reason):
                note(.status, service: settings.service, member: id, detail: "\(from) -> \(to) (epoch \(epoch)): \(reason)")
                logger.notice(
                    "status \(from) -> \(to)",
                    metadata: ["epoch": "\(epoch)", "reason": "\(reason)", "service": "\(settings.service)"])
            case .memberJoined(let member):
                note(.joined, service: member.service, member: member.id, detail: "joined at \(member.address) (\(member.status))")
                logger.info(
                    "member joined",
                    metadata: ["member": "\(member.id)", "service": "\(member.service)",
                               "status": "\(member.status)", "address": "\(member.address)"])
            case .memberLeft(let member, let reason):
                links.forget(member.address)
                note(reason == .timedOut ? .died : .left, service: member.service, member: member.id,
                     detail: reason == .timedOut ? "not heard for the failure timeout (was \(member.status))" : "left (was \(member.status))")
                logger.info(
                    reason == .timedOut ? "member died" : "member left",
                    metadata: ["member": "\(member.id)", "service": "\(member.service)",
                               "status": "\(member.status)", "reason": "\(reason.rawValue)"])
            case .ignored(let reason, let from):
                rejections.record(reason, detail: "heartbeat from \(from) ignored: \(reason)", level: .notice)
            }
        }
    }

    /// Adds to the event timeline, dated by the wall clock (for display only; nothing decides by it).
    private func note(
        _ kind: ClusterEvent.Kind, service: ServiceName, member: NodeID? = nil, detail: String, durationMs: Int64? = nil
    ) {
        timeline.record(ClusterEvent(
            atUnixMs: Self.wallClockMs(), kind: kind, service: service.value, member: member?.description, detail: detail,
            durationMs: durationMs))
    }

    private func warnIfNoSeedAnswered() {
        guard seedSilence.tick(nowMs: nowMs, peersInRecord: membership.members.count) else { return }
        let seeds = settings.joins.map(seedResolver.describe).joined(separator: ", ")
        logger.warning(
            "no --join seed has answered (\(seeds)): running as a cluster of one; check the addresses, the firewall and the cluster key",
            metadata: ["seeds": "\(seeds)"])
    }

    // MARK: HTTP

    /// The `--http` endpoints (README, "Watching it over HTTP"): the dashboard, its JSON, the metrics.
    private func serve(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/metrics":
            let sources = NodeMetrics.Sources(
                members: Array(membership.members.values) + [membership.selfMember(nowMs: nowMs)],
                rejected: rejections.counts, openLinks: links.openLinks, reconnects: links.reconnects,
                bytesSent: links.bytesSent, bytesReceived: peers.bytesReceived,
                keyShards: (settings.service, jobs.engine.leasedShards.count))
            return HTTPResponse(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render(sources))
        case "/":
            return DashboardPage.response()
        case "/api/status":
            do {
                let status = DashboardStatus(
                    report: statusReport(), jobs: rates.snapshot(nowMs: nowMs), events: timeline.events,
                    nowUnixMs: Self.wallClockMs())
                return .json(try status.jsonBytes())
            } catch {
                logger.error("cannot encode the status: \(error)")
                return .text(500, "the status could not be encoded")
            }
        default:
            return .text(404, "no such page; try /, /metrics or /api/status")
        }
    }

    /// This process's record as `STATUS` and `/api/status` report it.
    private func statusReport() -> StatusReport {
        StatusReport(
            selfID: id, members: Array(membership.members.values) + [membership.selfMember(nowMs: nowMs)],
            nowMs: nowMs, rejected: rejections.counts, scaler: membership.primary(of: .agent, nowMs: nowMs)?.id)
    }

    // MARK: Scaling

    /// The agents' primary is the scaler: each interval it decides from the record.
    private func scale() {
        guard let agent, membership.status == .primary, !isDraining, !isStopping else { return }
        agent.scale(record: Array(membership.members.values) + [membership.selfMember(nowMs: nowMs)], draining: isDraining, nowMs: nowMs)
    }

    /// A frame from a peer: scaling requests are the shell's, the rest is the job plane's.
    private func received(_ message: PeerMessage, from peer: NodeAddress) {
        switch message {
        case .spawn(let service, let reason):
            guard let agent else {
                rejections.record(
                    "spawn_refused", detail: "\(peer) asked a worker of \(settings.service) for a \(service) worker",
                    level: .notice)
                links.send(.spawnRefused(service: service, reason: "this process is a worker of \(settings.service), not an agent"), to: peer)
                links.flush()
                return
            }
            agent.spawnRequested(service, reason: reason, by: peer, draining: isDraining, nowMs: nowMs)
            membership.workload = workload
        case .spawnRefused(let service, let reason):
            agent?.spawnRefused(service, reason: reason, by: peer, nowMs: nowMs)
        case .retire(let reason):
            guard case .worker = role else { return }
            beginDrain(reason: "retired by the scaler at \(peer): \(reason)")
        default:
            jobs.received(message, from: peer, nowMs: nowMs)
        }
    }
}
