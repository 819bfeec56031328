import HeapModule
import StarlingCore
import StarlingTestSupport

/// Runs many processes of the production core — `Membership` and `JobEngine` together — in one
/// test, over a simulated clock and network: heartbeats over a lossy, duplicating, reordering
/// datagram network with partitions; peer frames over FIFO links that break with frames in flight,
/// stall and deliver late, and drop frames at a buffer limit; crashes (of primaries and entry
/// nodes in mid-dispatch too), restarts, pauses, drains and join bursts; pipelined clients that
/// submit again elsewhere when their entry node dies; handlers that are instant, slow, failing or
/// timing out. The properties of docs/HANDBOOK.md, "The simulation" are checked after every step
/// and at the end.
///
/// Everything random comes from the root seed, so `STARLING_SIM_SEED=<seed>` replays a run exactly
/// (under `scripts/test`, which fixes the seed of Swift's hashing: the order dictionaries are
/// walked in reaches the order of directives).
final class ClusterSimulation {
    struct Violation: Error, CustomStringConvertible {
        let seed: UInt64
        let atMs: Int64
        let message: String
        let scenario: String
        let replay: String
        let trace: [String]

        var description: String {
            """
            seed \(seed) violated a property at \(atMs) ms: \(message)
              scenario: \(scenario)
              replay: \(replay)
              last events:
            \(trace.suffix(40).map { "    " + $0 }.joined(separator: "\n"))
            """
        }
    }

    struct Slot {
        var address: NodeAddress
        var membership: Membership?
        var engine: JobEngine?
        var incarnation = 0
        var pausedUntilMs: Int64 = 0
        var admittedAtMs: Int64?
        var startedAtMs: Int64 = 0
        /// Its seed when it started, if that was running then (its slot and incarnation): joining
        /// too, at a cold start, it answers and relays all the same.
        var seedAtStart: (slot: Int, incarnation: Int)?
        /// Admitted through a seed that stayed a running, unpaused member from its start: it joined a
        /// group (property 4), rather than starting one of its own.
        var joinedThroughLiveSeed = false
        /// Set while it drains: when it stops at the latest.
        var drainDeadlineMs: Int64?
        /// Checker state: the highest epoch per service this process was shown (in heartbeats and
        /// dispatches), and its last readings.
        var epochsObserved: [ServiceName: UInt64] = [:]
        var lastEpoch: UInt64 = 0
        var lastHighest: [ServiceName: UInt64] = [:]
        var followedVersion: UInt64?
        /// The at-once checker's state: each service's primary (address and epoch) as this
        /// incarnation's record last showed it, and the keys it ran to the end.
        var primariesSeen: [ServiceName: PrimarySeen] = [:]
        var finishedHere: Set<JobID> = []

        var isRunning: Bool { membership != nil }
        var isDraining: Bool { drainDeadlineMs != nil }
    }

    /// A service's primary as one record shows it, for the at-once checker.
    struct PrimarySeen: Equatable {
        var address: NodeAddress
        var epoch: UInt64
    }

    /// A handler run in progress: where, in which incarnation of that process, since when.
    private struct Run {
        var slot: Int
        var incarnation: Int
        var startMs: Int64
    }

    private struct Frame {
        var message: PeerMessage
        var bytes: Int
        var from: Int
        var to: Int
        var generation: Int
        var toIncarnation: Int
    }

    private struct Event: Comparable {
        enum Kind {
            case fault(SimulationScenario.Fault)
            case tick(slot: Int, incarnation: Int)
            case deliver(bytes: [UInt8], to: Int)
            case frame(Frame)
            case linkLost(slot: Int, incarnation: Int, peer: NodeAddress)
            case handlerDone(slot: Int, incarnation: Int, key: JobKey, outcome: JobOutcome)
            case request(client: Int, connection: SimulatedClient.Connection, job: Int)
            case answer(client: Int, connection: SimulatedClient.Connection, response: ClientResponse)
            case clientWake(client: Int)
            case clientDisconnected(client: Int, connection: SimulatedClient.Connection)
        }

        var atMs: Int64
        /// At one instant, faults go first, then timers (as libuv runs timers before polling I/O), then I/O.
        var phase: Int
        var order: UInt64
        var kind: Kind

        static func < (lhs: Event, rhs: Event) -> Bool { (lhs.atMs, lhs.phase, lhs.order) < (rhs.atMs, rhs.phase, rhs.order) }
        static func == (lhs: Event, rhs: Event) -> Bool { (lhs.atMs, lhs.phase, lhs.order) == (rhs.atMs, rhs.phase, rhs.order) }
    }

    let seed: UInt64
    let scenario: SimulationScenario
    private let verbose: Bool
    private var network: SeededRandom
    private var identities: SeededRandom
    private var nowMs: Int64 = 0
    private var events = Heap<Event>()
    private var nextOrder: UInt64 = 0
    private(set) var slots: [Slot]
    private var slotAt: [NodeAddress: Int] = [:]
    private var partitionSide: Set<Int>?
    private var lastFaultMs: Int64 = 0
    /// When the last process stopped without a goodbye, and until when property 1's bound runs
    /// from a second round of detection: a crash within one detection of another may have taken
    /// the only processes that would detect the first (its service's hub and deputy).
    private var lastCrashMs: Int64?
    private var detectedTwiceUntilMs: Int64 = 0
    /// Newcomers admitted without a live seed (`Slot.joinedThroughLiveSeed`): each runs alone, as
    /// the README says a worker whose seeds never answered does, a partition of one until a member
    /// of the group knows it; with the time its seed was back, if it is.
    private var islands: [Int: Int64?] = [:]
    /// How long after its seed came back an island may stay apart: it heartbeats its seed at least
    /// every `MembershipConfig.probeEveryTicks` intervals (500 ms), and the news spreads in a few.
    static let islandMergeBoundMs: Int64 = 2_000
    private(set) var longestIslandMergeMs: Int64 = 0
    /// The wrong sequence numbers forgeries gave, and when a record last took one from a relay: a
    /// forged number taken into one record travels on in that process's gossip (docs/HANDBOOK.md,
    /// "sequence fence"), so the forgery still arrives, at the records that take it, until then.
    private var forgedSequences: Set<UInt64> = []
    private var lastForgedRelayMs: Int64 = 0
    private var lastForgeryMs: Int64 = 0
    /// The longest after a forgery that a record took one of its numbers from a relay.
    private(set) var longestForgedRelayMs: Int64 = 0
    /// When a client last got an answer: a backlog still being answered is slow, not stuck.
    private var lastAnswerMs: Int64 = 0
    private var lastHealMs: Int64 = -1_000_000
    private var trace: [String] = []
    private var dualPrimarySince: [ServiceName: Int64] = [:]
    /// Property 5's state: since when two processes have claimed primary of a service, continuously.
    private var overlapSince: [ServiceName: Int64] = [:]
    /// The longest time two processes claimed primary of one service at once: in all, and the part
    /// after the last fault (which property 5 bounds).
    private(set) var longestOverlapMs: Int64 = 0
    private(set) var longestOverlapAfterFaultMs: Int64 = 0
    private var settledPrimaries: [ServiceName: NodeID] = [:]
    private var links: [Int: SimulatedLink] = [:]
    /// Frames across a partition: TCP holds them until it heals (or the link is given up).
    private var heldFrames: [Frame] = []
    private var clients: [SimulatedClient]
    private var clientOfConnection: [ClientID: Int] = [:]
    private var nextClientID: ClientID = 1
    private let jobServices: [ServiceName]
    private(set) var heartbeatsDelivered = 0
    private(set) var framesDropped = 0
    private(set) var jobsRun = 0
    /// Dispatches an executor declined because it had seen a newer epoch: the fence at work.
    private(set) var staleDispatchesDeclined = 0
    /// Datagrams sent, in all and by the busiest sender (the shells' cost).
    private(set) var datagramsSent = 0
    private var sentBySlot: [Int: Int] = [:]
    var mostDatagramsSentBySlot: Int { sentBySlot.values.max() ?? 0 }
    /// Each crashed primary: when, the members of its service then, and when each of them dropped
    /// it from its record and when the service next had a primary (failover, issue 13).
    struct Failover {
        var service: ServiceName
        var primary: NodeID
        var atMs: Int64
        var group: [Int]
        var droppedAtMs: [Int: Int64] = [:]
        var newPrimaryAtMs: Int64?

        /// When the last of its group dropped it, after the crash; nil if one never did.
        var detectedAfterMs: Int64? {
            guard group.allSatisfy({ droppedAtMs[$0] != nil }) else { return nil }
            return (group.compactMap { droppedAtMs[$0] }.max() ?? atMs) - atMs
        }
        /// When the last record that held it (its group's or another service's) dropped it.
        var lastDroppedAfterMs: Int64? { droppedAtMs.values.max().map { $0 - atMs } }
    }
    private(set) var failovers: [Failover] = []
    private var lastRecordCheckMs: Int64 = -1_000_000
    /// The at-once checker's state (`checkRunsAlone`): the runs of each job in progress, when
    /// each job was first submitted, when a fault last happened, when the last pause or stall
    /// ends, and when a record last showed another primary of each service.
    private var runsInProgress: [JobID: [Run]] = [:]
    private var firstSubmittedMs: [JobID: Int64] = [:]
    private var lastFaultEventMs: Int64 = -1
    private var faultsInEffectUntilMs: Int64 = -1
    private var lastAdmissionMs: [ServiceName: Int64] = [:]
    private var primaryChangedMs: [ServiceName: Int64] = [:]
    private var falseDropMs: [ServiceName: Int64] = [:]
    /// Handler runs started, those that started while another run of the same job was in
    /// progress, and the overlaps excused, by the first excuse that holds, in the order of
    /// `checkRunsAlone`'s rule.
    private(set) var runsChecked = 0
    private(set) var runsOverlapped = 0
    private(set) var overlapsExcusedByFault = 0
    private(set) var overlapsExcusedByPrimaryChange = 0
    private(set) var overlapsExcusedByFalseDrop = 0
    var overlapsExcused: Int {
        overlapsExcusedByFault + overlapsExcusedByPrimaryChange + overlapsExcusedByFalseDrop
    }

    /// The command that replays this run, printed with a violation.
    let replayCommand: String

    /// A run drawn from `seed`; or, with `scripted`, that scenario, replayed by its own test
    /// (`replayTest`).
    init(seed: UInt64, maxProcesses: Int = 12, verbose: Bool = false, scenario scripted: SimulationScenario? = nil,
         replayTest: String? = nil) {
        replayCommand = replayTest.map { "scripts/test --filter \($0)" }
            ?? "STARLING_SIM_SEED=\(seed) scripts/test --filter SimulationTests"
        var root = SeededRandom(seed: seed)
        var shape = root.fork()
        self.seed = seed
        self.scenario = scripted ?? (seed % 4 == 3
            ? .stability(&shape, maxProcesses: maxProcesses)
            : .chaos(&shape, maxProcesses: maxProcesses))
        self.network = root.fork()
        self.identities = root.fork()
        self.verbose = verbose
        self.slots = (0..<self.scenario.processCount).map { index in
            Slot(address: .ipv4(127, 0, 0, 1, port: UInt16(20_000 + index)))
        }
        clients = self.scenario.clients.enumerated().map { SimulatedClient(plan: $1, index: $0) }
        var services: [ServiceName] = []
        for service in self.scenario.services where !services.contains(service) { services.append(service) }
        jobServices = services
        for (index, slot) in slots.enumerated() { slotAt[slot.address] = index }
    }

    /// Jobs the clients submitted, and of those the ones answered exactly once with their result.
    var jobsSubmitted: Int { clients.reduce(0) { $0 + $1.submitted } }
    var jobsAnsweredOnce: Int { clients.reduce(0) { $0 + $1.results.count } }

    /// Runs to the scenario's end; throws the first property violated.
    func run() throws(Violation) {
        let lateJoiners = Set(scenario.faults.flatMap { fault -> [Int] in
            if case .joinBurst(let joiners) = fault.fault { return joiners }
            return []
        })
        for slot in 0..<scenario.processCount where !lateJoiners.contains(slot) {
            // The first process starts alone; the rest join it shortly after, some at the same instant.
            schedule(.fault(.restart(slot: slot)), atMs: slot == 0 ? 0 : Int64.random(in: 50...400, using: &network), phase: 0)
        }
        for (atMs, fault) in scenario.faults { schedule(.fault(fault), atMs: atMs, phase: 0) }
        for client in clients.indices { schedule(.clientWake(client: client), atMs: clients[client].plan.startMs, phase: 2) }
        lastFaultMs = 0
        lastCrashMs = nil
        detectedTwiceUntilMs = 0
        while let event = events.popMin(), event.atMs <= scenario.endMs || event.atMs <= endMs {
            nowMs = event.atMs
            try handle(event)
        }
        nowMs = endMs
        try checkAtEnd()
    }

    // MARK: Events

    private func schedule(_ kind: Event.Kind, atMs: Int64, phase: Int) {
        nextOrder += 1
        events.insert(Event(atMs: atMs, phase: phase, order: nextOrder, kind: kind))
    }

    /// An event for a paused process waits until it runs again; true when it was put off.
    private func putOffIfPaused(_ event: Event, slot index: Int) -> Bool {
        guard nowMs < slots[index].pausedUntilMs else { return false }
        schedule(event.kind, atMs: slots[index].pausedUntilMs, phase: event.phase)
        return true
    }

    private func handle(_ event: Event) throws(Violation) {
        switch event.kind {
        case .fault(let fault):
            try apply(fault)
        case .tick(let index, let incarnation):
            guard slots[index].isRunning, slots[index].incarnation == incarnation, !putOffIfPaused(event, slot: index) else { return }
            slots[index].membership!.workload = slots[index].engine!.workload
            try carryOut(slots[index].membership!.tick(nowMs: nowMs), from: index)
            try carryJobs(slots[index].engine!.tick(nowMs: nowMs), at: index)
            schedule(event.kind, atMs: nowMs + scenario.intervalMs, phase: 1)
            if let deadline = slots[index].drainDeadlineMs, slots[index].engine!.isIdle || nowMs >= deadline {
                try finishDrain(index)
            }
            if nowMs - lastRecordCheckMs >= scenario.recordCheckEveryMs {
                lastRecordCheckMs = nowMs
                try checkAfterTick()
            }
        case .deliver(let bytes, let index):
            guard slots[index].isRunning, !putOffIfPaused(event, slot: index) else { return }
            guard case .success(let heartbeat) = HeartbeatCodec.decode(bytes) else {
                throw violation("a heartbeat the core encoded did not decode")
            }
            heartbeatsDelivered += 1
            let relayedForgeries = forgedSequences.isEmpty ? [] : heartbeat.gossip.filter {
                forgedSequences.contains($0.sequence) && slots[index].membership!.members[$0.id]?.sequence != $0.sequence
            }
            observe(epoch: heartbeat.epoch, of: heartbeat.service, at: index)
            try carryOut(slots[index].membership!.receive(heartbeat, nowMs: nowMs), from: index)
            if relayedForgeries.contains(where: { slots[index].membership!.members[$0.id]?.sequence == $0.sequence }) {
                lastForgedRelayMs = nowMs
                longestForgedRelayMs = max(longestForgedRelayMs, nowMs - lastForgeryMs)
            }
        case .frame(let frame):
            try deliver(frame, event)
        case .linkLost(let index, let incarnation, let peer):
            guard slots[index].isRunning, slots[index].incarnation == incarnation, !putOffIfPaused(event, slot: index) else { return }
            if verbose { log("slot \(index) lost its link to \(peer)") }
            try carryJobs(slots[index].engine!.linkLost(to: peer, nowMs: nowMs), at: index)
        case .handlerDone(let index, let incarnation, let key, let outcome):
            guard slots[index].isRunning, slots[index].incarnation == incarnation, !putOffIfPaused(event, slot: index) else { return }
            runEnded(JobID(service: slots[index].membership!.config.service, key: key), at: index)
            try carryJobs(slots[index].engine!.finished(key, outcome: outcome, nowMs: nowMs), at: index)
        case .request(let client, let connection, let job):
            guard clients[client].connection == connection, slots[connection.slot].isRunning,
                  slots[connection.slot].incarnation == connection.incarnation else { return }
            guard !putOffIfPaused(event, slot: connection.slot) else { return }
            let id = JobID(service: service(ofJob: job), key: clients[client].key(job))
            if firstSubmittedMs[id] == nil { firstSubmittedMs[id] = nowMs }
            let directives = slots[connection.slot].engine!.submit(
                service: service(ofJob: job), key: clients[client].key(job), payload: clients[client].payload(job),
                client: connection.id, nowMs: nowMs)
            try carryJobs(directives, at: connection.slot)
        case .answer(let client, let connection, let response):
            try answered(client, on: connection, response)
        case .clientWake(let client):
            clients[client].wakeScheduled = false
            submitMore(client)
        case .clientDisconnected(let client, let connection):
            guard clients[client].connection == connection else { return }
            dropConnection(of: client, tellEntry: false)
        }
    }

    private func apply(_ fault: SimulationScenario.Fault) throws(Violation) {
        lastFaultMs = max(lastFaultMs, nowMs)
        lastFaultEventMs = nowMs
        log("fault \(fault)")
        switch fault {
        case .crash(let index):
            stop(index)
        case .restart(let index):
            stop(index)
            start(index)
        case .restartAllDown:
            for index in slots.indices where !slots[index].isRunning { start(index) }
        case .joinBurst(let indices):
            for index in indices { stop(index); start(index) }
        case .pause(let index, let durationMs):
            slots[index].pausedUntilMs = max(slots[index].pausedUntilMs, nowMs + durationMs)
            lastFaultMs = max(lastFaultMs, nowMs + durationMs)
            faultsInEffectUntilMs = max(faultsInEffectUntilMs, nowMs + durationMs)
        case .partition(let side):
            partitionSide = side
        case .heal:
            partitionSide = nil
            lastHealMs = nowMs
            releaseHeldFrames()
        case .crashPrimary(let slot):
            let service = scenario.services[slot]
            if let primary = slots.indices.first(where: {
                slots[$0].membership?.status == .primary && slots[$0].membership?.config.service == service
            }) {
                log("crash the primary of \(service): slot \(primary)")
                let group = slots.indices.filter {
                    $0 != primary && slots[$0].membership?.config.service == service && slots[$0].membership?.status != .joining
                }
                failovers.append(Failover(service: service, primary: slots[primary].membership!.id, atMs: nowMs, group: group))
                stop(primary)
            }
        case .crashBusiestEntry:
            let load = Dictionary(grouping: clients.compactMap(\.connection?.slot)) { $0 }.mapValues(\.count)
            if let busiest = load.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key {
                log("crash the busiest entry node: slot \(busiest)")
                stop(busiest)
            }
        case .breakLink(let a, let b):
            breakLink(a, b)
        case .stallLink(let from, let to, let durationMs):
            guard from != to else { return }
            links[linkKey(from, to), default: SimulatedLink()].stalledUntilMs = nowMs + durationMs
            faultsInEffectUntilMs = max(faultsInEffectUntilMs, nowMs + durationMs)
        case .loseSilently(let from, let to):
            loseSilently(from: from, to: to)
        case .drain(let index):
            guard slots[index].isRunning, !slots[index].isDraining else { return }
            slots[index].drainDeadlineMs = nowMs + 2_000
            slots[index].engine!.drain()
            slots[index].membership!.workload = slots[index].engine!.workload
            try carryOut(slots[index].membership!.drain(nowMs: nowMs), from: index)
        case .forgePrimaryClaim(let slot, let ofPrimary, let victims, let epoch, let sequence):
            let service = scenario.services[slot]
            let impersonated = ofPrimary
                ? slots.indices.first { slots[$0].membership?.status == .primary && slots[$0].membership?.config.service == service }
                : slot
            guard let impersonated, let member = slots[impersonated].membership?.selfMember(nowMs: nowMs) else { return }
            var forged = Self.heartbeat(of: member)
            forged.status = .primary
            forged.epoch = epoch
            forged.sequence = sequence
            forge(forged, to: victims, impersonating: impersonated)
        case .forgeLeave(let slot, let victims, let sequence):
            let service = scenario.services[slot]
            let standbys = slots.indices.filter {
                slots[$0].membership?.status == .standby && slots[$0].membership?.config.service == service && !slots[$0].isDraining
            }
            guard let standby = standbys.contains(slot) ? slot : standbys.first,
                  let member = slots[standby].membership?.selfMember(nowMs: nowMs) else { return }
            var forged = Self.heartbeat(of: member)
            forged.flags = [.leaving]
            forged.sequence = sequence
            forge(forged, to: victims, impersonating: standby)
        case .forgeGossip(let about, let victims, let sequence):
            guard let subject = slots[about].membership?.selfMember(nowMs: nowMs) else { return }
            for victim in victims where slots[victim].isRunning {
                // The carrier's next heartbeat, with the forged entry slipped in.
                let others = (1..<slots.count).map { (victim + $0) % slots.count }
                guard let carrier = others.first(where: { slots[$0].isRunning && $0 != about }) ?? others.first(where: { slots[$0].isRunning }),
                      let member = slots[carrier].membership?.selfMember(nowMs: nowMs) else { continue }
                var forged = Self.heartbeat(of: member)
                forged.sequence = member.sequence + 1
                forged.gossip = [Heartbeat.Gossip(id: subject.id, sequence: sequence, address: subject.address)]
                forge(forged, to: [victim], impersonating: carrier)
            }
        }
    }

    /// A heartbeat as `member` describes itself (a forgery's starting point).
    private static func heartbeat(of member: Member) -> Heartbeat {
        Heartbeat(
            sender: member.id, service: member.service, status: member.status, priority: member.priority,
            epoch: member.epoch, workload: member.workload, address: member.address,
            flags: member.leaving ? [.draining] : [], sequence: member.sequence)
    }

    /// A forged datagram arrives at each victim now (or when it runs again, if paused).
    private func forge(_ heartbeat: Heartbeat, to victims: [Int], impersonating: Int) {
        let bytes = HeartbeatCodec.encode(heartbeat)
        if heartbeat.gossip.isEmpty { forgedSequences.insert(heartbeat.sequence) }
        for entry in heartbeat.gossip { forgedSequences.insert(entry.sequence) }
        lastForgeryMs = nowMs
        log("forged in the name of slot \(impersonating) (\(heartbeat.sender.short)) to slots \(victims): \(heartbeat.status), "
            + "epoch \(heartbeat.epoch), sequence \(heartbeat.sequence), flags \(heartbeat.flags.rawValue), \(heartbeat.gossip.count) gossip")
        for victim in victims where victim != impersonating && slots[victim].isRunning {
            schedule(.deliver(bytes: bytes, to: victim), atMs: nowMs, phase: 2)
        }
    }

    /// The simulated handlers' timeout, and overdue bounds scaled to the simulation's few seconds.
    static let engineConfig: JobEngine.Config = {
        var config = JobEngine.Config()
        config.router.jobTimeoutMs = SimulatedHandler.timeoutMs
        config.router.overdue = JobOverdue(allowanceMs: 500)
        config.entry.overdue = JobOverdue(allowanceMs: 500)
        return config
    }()

    /// Every process joins through slot 0; slot 0 through slot 1.
    private func seedSlot(of index: Int) -> Int { index == 0 ? 1 % slots.count : 0 }

    private func start(_ index: Int) {
        let seedSlot = seedSlot(of: index)
        let seed = slots[seedSlot]
        slots[index].seedAtStart = seed.isRunning && seed.pausedUntilMs <= nowMs ? (seedSlot, seed.incarnation) : nil
        slots[index].startedAtMs = nowMs
        let seeds = [seed.address]
        let config = MembershipConfig(
            service: scenario.services[index], priority: scenario.priorities[index],
            address: slots[index].address, seeds: seeds, intervalMs: scenario.intervalMs)
        let id = NodeID(admittedAtUnixMs: 1_700_000_000_000 + UInt64(nowMs), using: &identities)
        var membership = Membership(config: config, id: id)
        let directives = membership.start(nowMs: nowMs)
        slots[index].membership = membership
        slots[index].engine = JobEngine(
            address: slots[index].address, service: config.service, slots: 1 + index % 4, config: Self.engineConfig)
        slots[index].incarnation += 1
        slots[index].pausedUntilMs = 0
        slots[index].admittedAtMs = nil
        slots[index].drainDeadlineMs = nil
        slots[index].epochsObserved = [:]
        slots[index].lastEpoch = 0
        slots[index].lastHighest = [:]
        slots[index].followedVersion = nil
        slots[index].primariesSeen = [:]
        slots[index].finishedHere = []
        log("start slot \(index) as \(id.short) (\(config.service), priority \(config.priority))")
        try? carryOut(directives, from: index)
        schedule(.tick(slot: index, incarnation: slots[index].incarnation), atMs: nowMs + scenario.intervalMs, phase: 1)
    }

    /// The process is gone (crash, or the end of a drain): its links close, its clients see
    /// their connections break, whatever it held is lost.
    private func stop(_ index: Int, saidGoodbye: Bool = false) {
        guard slots[index].isRunning else { return }
        if !saidGoodbye {
            // Survivors that hold the first crashed process second-hand detect it only once they
            // take the roles of the hub and deputy that crashed: two rounds of suspect-after.
            if let last = lastCrashMs, nowMs - last <= scenario.suspectAfterMs + scenario.intervalMs {
                detectedTwiceUntilMs = max(detectedTwiceUntilMs, nowMs + scenario.suspectAfterMs + scenario.intervalMs)
            }
            lastCrashMs = nowMs
        }
        // Its runs are gone with it.
        for id in Array(runsInProgress.keys) {
            runsInProgress[id]!.removeAll { $0.slot == index }
            if runsInProgress[id]!.isEmpty { runsInProgress[id] = nil }
        }
        slots[index].membership = nil
        slots[index].engine = nil
        slots[index].drainDeadlineMs = nil
        islands[index] = nil
        slots[index].incarnation += 1
        for other in slots.indices where other != index {
            for key in [linkKey(index, other), linkKey(other, index)] where links[key] != nil {
                links[key]!.generation += 1
                links[key]!.bytesInFlight = 0
            }
            // Its peers see their connections to and from it reset.
            if slots[other].isRunning {
                schedule(.linkLost(slot: other, incarnation: slots[other].incarnation, peer: slots[index].address),
                         atMs: nowMs + Int64.random(in: 1...5, using: &network), phase: 2)
            }
        }
        for client in clients.indices where clients[client].connection?.slot == index {
            schedule(.clientDisconnected(client: client, connection: clients[client].connection!),
                     atMs: nowMs + Int64.random(in: 1...5, using: &network), phase: 2)
        }
    }

    /// A drained process (idle, or out of time) says goodbye and stops. One that stops after the
    /// faults are over is replaced at once, as the scaler would, so the liveness phase has every
    /// service.
    private func finishDrain(_ index: Int) throws(Violation) {
        log("slot \(index) drained (\(slots[index].engine!.isIdle ? "idle" : "timed out")): leaving")
        try carryOut(slots[index].membership!.leave(nowMs: nowMs), from: index)
        stop(index, saidGoodbye: true)
        lastFaultMs = max(lastFaultMs, nowMs)
        lastFaultEventMs = nowMs
        if nowMs >= scenario.faultsEndMs { start(index) }
    }

    // MARK: Membership

    private func carryOut(_ directives: [MembershipDirective], from index: Int) throws(Violation) {
        for directive in directives {
            switch directive {
            case .send(let heartbeat, let targets):
                let bytes = HeartbeatCodec.encode(heartbeat)
                datagramsSent += targets.count
                sentBySlot[index, default: 0] += targets.count
                for target in targets { transmit(bytes, from: index, to: target) }
            case .statusChanged(let from, let to, let epoch, let reason):
                log("slot \(index) \(from) -> \(to) epoch \(epoch): \(reason)")
                if to == .primary, let last = failovers.indices.last, failovers[last].newPrimaryAtMs == nil,
                   failovers[last].service == slots[index].membership!.config.service {
                    failovers[last].newPrimaryAtMs = nowMs
                }
                if from == .joining {
                    slots[index].admittedAtMs = nowMs
                    slots[index].joinedThroughLiveSeed = slots[index].seedAtStart.map { seed in
                        slots[seed.slot].isRunning && slots[seed.slot].incarnation == seed.incarnation
                            && slots[seed.slot].pausedUntilMs <= slots[index].startedAtMs
                    } ?? false
                    if !slots[index].joinedThroughLiveSeed { islands[index] = .some(nil) }
                    lastAdmissionMs[slots[index].membership!.config.service] = nowMs
                    // An admission can start a handover to a higher-priority newcomer: the group settles from here.
                    lastFaultMs = max(lastFaultMs, nowMs)
                }
            case .memberJoined(let member):
                if verbose { log("slot \(index) learns \(member.id.short) \(member.status)") }
            case .memberLeft(let member, let reason):
                if verbose || scenario.recordCheckEveryMs == 0 { log("slot \(index) drops \(member.id.short): \(reason.rawValue)") }
                // A process dropped while it runs: a false suspicion (datagrams lost, forged, or late).
                if let other = slotAt[member.address], slots[other].membership?.id == member.id {
                    falseDropMs[member.service] = nowMs
                }
                for at in failovers.indices where failovers[at].primary == member.id && failovers[at].droppedAtMs[index] == nil {
                    failovers[at].droppedAtMs[index] = nowMs
                }
                // As the shell does: the link to it is given up, with whatever waits on it.
                if let other = slotAt[member.address] { closeLink(from: index, to: other) }
            case .ignored(let reason, let from):
                log("slot \(index) ignored heartbeat from \(from): \(reason)")
            }
        }
        try checkEpochsMonotonic(index)
        // As the shell does after every membership input: the job path follows the record. A
        // large cluster's shell rebuilds the view only when the record moved (`recordVersion`).
        guard let membership = slots[index].membership else { return }
        if scenario.recordCheckEveryMs > 0, slots[index].followedVersion == membership.recordVersion { return }
        slots[index].followedVersion = membership.recordVersion
        let view = JobView(membership, nowMs: nowMs)
        notePrimaries(of: view, at: index)
        try carryJobs(slots[index].engine!.follow(view, nowMs: nowMs), at: index)
    }

    private func transmit(_ bytes: [UInt8], from sender: Int, to address: NodeAddress) {
        guard let receiver = slotAt[address] else { return }
        if let side = partitionSide, side.contains(sender) != side.contains(receiver) { return }
        if network.chance(lossRate) { return }
        let copies = network.chance(scenario.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            let delay = Int64.random(in: scenario.minDelayMs...scenario.maxDelayMs, using: &network)
            schedule(.deliver(bytes: bytes, to: receiver), atMs: nowMs + delay, phase: 2)
        }
    }

    private func observe(epoch: UInt64, of service: ServiceName, at index: Int) {
        slots[index].epochsObserved[service] = max(slots[index].epochsObserved[service, default: 0], epoch)
    }

    // MARK: Jobs

    private func service(ofJob job: Int) -> ServiceName { jobServices[job % jobServices.count] }

    private func carryJobs(_ directives: [JobDirective], at index: Int) throws(Violation) {
        for directive in directives {
            switch directive {
            case .answer(let id, let response):
                guard let client = clientOfConnection[id], let connection = clients[client].connection, connection.id == id else { continue }
                schedule(.answer(client: client, connection: connection, response: response),
                         atMs: nowMs + Int64.random(in: 0...2, using: &network), phase: 2)
            case .send(let message, let peer):
                if case .declined(let epoch, let service, _, _) = message, epoch < slots[index].epochsObserved[service, default: 0] {
                    staleDispatchesDeclined += 1
                }
                send(message, from: index, to: peer)
            case .run(let ticket, let epoch):
                // Property 3: no execution under an epoch older than one the executor has seen.
                let floor = slots[index].epochsObserved[ticket.service, default: 0]
                guard epoch >= floor else {
                    throw violation("slot \(index) ran \(ticket.key) under epoch \(epoch) after seeing epoch \(floor)")
                }
                guard ticket.service == slots[index].membership!.config.service else {
                    throw violation("slot \(index) of \(slots[index].membership!.config.service) ran a job of \(ticket.service)")
                }
                jobsRun += 1
                try checkRunsAlone(JobID(service: ticket.service, key: ticket.key), at: index)
                let behaviour = SimulatedHandler.behaviour(of: ticket.key)
                if verbose { log("slot \(index) runs \(ticket.key) at epoch \(epoch)") }
                schedule(.handlerDone(slot: index, incarnation: slots[index].incarnation, key: ticket.key, outcome: behaviour.outcome),
                         atMs: nowMs + Int64.random(in: behaviour.durationMs, using: &network), phase: 2)
            }
        }
        try checkBounded(index)
    }

    private func linkKey(_ from: Int, _ to: Int) -> Int { from * 1_000 + to }

    /// A frame onto the link from `index` to `peer`, as `PeerLinks` sends it: dropped (and handed
    /// back to the engine) when the link's buffer is full; held across a partition; FIFO.
    private func send(_ message: PeerMessage, from index: Int, to peer: NodeAddress) {
        // Nothing listens there: the connection is refused, the frames wait until it is given up.
        guard let receiver = slotAt[peer], slots[receiver].isRunning, receiver != index else { return }
        let key = linkKey(index, receiver)
        var link = links[key] ?? SimulatedLink()
        let size = PeerMessageCodec.encode(message).count
        guard link.bytesInFlight < scenario.linkBufferBytes else {
            framesDropped += 1
            if verbose { log("slot \(index) drops a frame to slot \(receiver): \(link.bytesInFlight) bytes wait") }
            slots[index].engine!.frameDropped(message, to: peer)
            return
        }
        link.bytesInFlight += size
        let frame = Frame(message: message, bytes: size, from: index, to: receiver, generation: link.generation,
                          toIncarnation: slots[receiver].incarnation)
        links[key] = link
        if let side = partitionSide, side.contains(index) != side.contains(receiver) {
            heldFrames.append(frame)
        } else {
            schedule(frame)
        }
    }

    private func schedule(_ frame: Frame) {
        let key = linkKey(frame.from, frame.to)
        let arrival = max(links[key]!.lastArrivalMs, links[key]!.stalledUntilMs,
                          nowMs + Int64.random(in: scenario.frameDelayMs, using: &network))
        links[key]!.lastArrivalMs = arrival
        schedule(.frame(frame), atMs: arrival, phase: 2)
    }

    private func releaseHeldFrames() {
        let held = heldFrames
        heldFrames = []
        for frame in held where links[linkKey(frame.from, frame.to)]?.generation == frame.generation {
            if let side = partitionSide, side.contains(frame.from) != side.contains(frame.to) {
                heldFrames.append(frame)
            } else {
                schedule(frame)
            }
        }
    }

    private func deliver(_ frame: Frame, _ event: Event) throws(Violation) {
        let key = linkKey(frame.from, frame.to)
        guard links[key]?.generation == frame.generation else { return }  // lost when the link broke
        guard slots[frame.to].incarnation == frame.toIncarnation, slots[frame.to].isRunning else { return }
        guard !putOffIfPaused(event, slot: frame.to) else { return }
        links[key]!.bytesInFlight -= frame.bytes
        if verbose { log("slot \(frame.to) gets from slot \(frame.from): \(frame.message)") }
        if case .dispatch(let epoch, let ticket) = frame.message, ticket.service == slots[frame.to].membership!.config.service {
            observe(epoch: epoch, of: ticket.service, at: frame.to)
        }
        try carryJobs(slots[frame.to].engine!.received(frame.message, from: slots[frame.from].address, nowMs: nowMs), at: frame.to)
    }

    /// Frames in flight either way are lost; both ends see the connection break.
    private func breakLink(_ a: Int, _ b: Int) {
        guard a != b else { return }
        closeLink(from: a, to: b)
        closeLink(from: b, to: a)
        if slots[a].isRunning {
            schedule(.linkLost(slot: a, incarnation: slots[a].incarnation, peer: slots[b].address), atMs: nowMs, phase: 2)
        }
    }

    /// The link from `from` to `to` is closed: what is in flight on it is lost, and the far end
    /// sees its connection close a moment later.
    private func closeLink(from: Int, to: Int) {
        let key = linkKey(from, to)
        guard links[key] != nil else { return }
        links[key]!.generation += 1
        links[key]!.bytesInFlight = 0
        links[key]!.lastArrivalMs = nowMs
        if slots[to].isRunning {
            schedule(.linkLost(slot: to, incarnation: slots[to].incarnation, peer: slots[from].address),
                     atMs: nowMs + Int64.random(in: 1...5, using: &network), phase: 2)
        }
    }

    /// What is in flight from `from` to `to` is lost, and neither end hears of it.
    private func loseSilently(from: Int, to: Int) {
        let key = linkKey(from, to)
        guard from != to, links[key] != nil else { return }
        log("the link from slot \(from) to slot \(to) loses what is in flight, silently")
        links[key]!.generation += 1
        links[key]!.bytesInFlight = 0
        links[key]!.lastArrivalMs = nowMs
    }

    // MARK: Clients

    private func submitMore(_ index: Int) {
        if clients[index].connection == nil {
            let candidates = slots.indices.filter { slots[$0].isRunning && !slots[$0].isDraining }
            let first = clients[index].plan.entry.flatMap { candidates.contains($0) ? $0 : nil }
            clients[index].plan.entry = nil
            guard let target = first ?? candidates.randomElement(using: &network) else {
                wake(index, afterMs: 100)
                return
            }
            let connection = SimulatedClient.Connection(slot: target, incarnation: slots[target].incarnation, id: nextClientID)
            nextClientID += 1
            clientOfConnection[connection.id] = index
            clients[index].connection = connection
        }
        let connection = clients[index].connection!
        // New jobs only until a while after the last fault: the liveness phase must see them all answered.
        if nowMs >= scenario.faultsEndMs + 1_000 { clients[index].plan.jobs = clients[index].submitted }
        while clients[index].outstanding.count < clients[index].plan.pipeline {
            let job: Int
            if !clients[index].again.isEmpty {
                job = clients[index].again.removeFirst()
            } else if clients[index].submitted < clients[index].plan.jobs {
                job = clients[index].submitted
                clients[index].submitted += 1
            } else {
                break
            }
            clients[index].outstanding.insert(job)
            schedule(.request(client: index, connection: connection, job: job),
                     atMs: nowMs + Int64.random(in: 0...2, using: &network), phase: 2)
        }
    }

    private func wake(_ index: Int, afterMs delay: Int64) {
        guard !clients[index].wakeScheduled else { return }
        clients[index].wakeScheduled = true
        schedule(.clientWake(client: index), atMs: nowMs + delay, phase: 2)
    }

    /// The client's connection is gone (closed by it, or broken): what it waited for goes again
    /// on its next connection, to a node it picks anew.
    private func dropConnection(of index: Int, tellEntry: Bool) {
        guard let connection = clients[index].connection else { return }
        if tellEntry, slots[connection.slot].isRunning, slots[connection.slot].incarnation == connection.incarnation {
            slots[connection.slot].engine!.clientGone(connection.id)
        }
        clients[index].again += clients[index].outstanding.sorted()
        clients[index].outstanding = []
        clients[index].connection = nil
        clientOfConnection[connection.id] = nil
        wake(index, afterMs: Int64.random(in: 10...100, using: &network))
    }

    private func answered(_ index: Int, on connection: SimulatedClient.Connection, _ response: ClientResponse) throws(Violation) {
        // An answer still on the wire when the connection broke is lost with it.
        guard clients[index].connection == connection else { return }
        let key: JobKey
        switch response {
        case .ok(let k, _), .fail(let k, _): key = k
        case .error(let k?, _, _): key = k
        default: throw violation("client \(index) got \(response) for a SUBMIT")
        }
        let prefix = "c\(index)-"
        guard key.value.hasPrefix(prefix), let job = Int(key.value.dropFirst(prefix.count)), job < clients[index].submitted else {
            throw violation("client \(index) got an answer for \(key), which it never submitted")
        }
        guard clients[index].outstanding.contains(job) else {
            throw violation("client \(index) got a second answer for \(key) on one connection: \(response)")
        }
        clients[index].outstanding.remove(job)
        if case .error(_, let code, let message) = response {
            // Not accepted: no primary for too long, a full queue, a draining node, no such
            // service known yet. The client tries again elsewhere, a little later.
            guard [.unavailable, .busy, .noService].contains(code) else {
                throw violation("client \(index) got ERR \(code) for \(key): \(message)")
            }
            if verbose { log("client \(index) refused \(key): \(code) \(message)") }
            clients[index].again.append(job)
            dropConnection(of: index, tellEntry: true)
            return
        }
        if let earlier = clients[index].results[job] {
            throw violation("\(key) answered twice: \(earlier), then \(response)")
        }
        let expected = SimulatedHandler.expected(for: key)
        guard response == expected else {
            throw violation("\(key) answered \(response), expected \(expected)")
        }
        clients[index].results[job] = response
        lastAnswerMs = nowMs
        submitMore(index)
    }

    // MARK: Job properties

    /// Nothing an engine holds grows past what the clients gave it (a loop that copies jobs or
    /// frames would), and what it holds stays within its configured bounds.
    private func checkBounded(_ index: Int) throws(Violation) {
        guard let engine = slots[index].engine else { return }
        let holdings = engine.holdings
        let jobs = max(1, jobsSubmitted)
        let limit = JobEngine.Config()
        guard holdings.pending <= min(jobs, limit.entry.maxPending), holdings.routed <= jobs,
              holdings.queued <= min(jobs, limit.router.maxQueued), holdings.running <= engine.slots,
              holdings.resend <= 4 * jobs else {
            throw violation("slot \(index) holds more than its bounds allow: \(holdings) for \(jobs) jobs submitted")
        }
    }

    /// When the run ends: `livenessMs` after the last fault, or, while jobs are unanswered but
    /// answers still come, `livenessMs` after the last answer, up to three times as long. A
    /// backlog larger than the executors clear in `livenessMs` is slow, not lost; a job that is
    /// lost while others are answered still fails the run, at the later end. Once every job is
    /// answered, the run still lasts `settleAfterLastAnswerMs` past the last answer.
    private var endMs: Int64 {
        guard clients.contains(where: \.awaitsAnswers) else {
            return max(scenario.endMs, lastAnswerMs + Self.settleAfterLastAnswerMs)
        }
        return min(max(scenario.endMs, lastAnswerMs + SimulationScenario.livenessMs), scenario.endMs + 2 * SimulationScenario.livenessMs)
    }

    /// An answer given late, near the scenario's end, may leave frames its run sent (the outcome
    /// to the primary) on their way: they land within the frame delay, or a tick after being
    /// dropped at a full link, well inside this.
    static let settleAfterLastAnswerMs: Int64 = 1_000

    /// The liveness phase: every fault healed `livenessMs` ago; every job submitted has its one
    /// answer, and every engine has let go of everything.
    private func checkAtEnd() throws(Violation) {
        for client in clients {
            let unanswered = (0..<client.submitted).filter { client.results[$0] == nil }
            guard unanswered.isEmpty else {
                for index in slots.indices {
                    guard let membership = slots[index].membership, let engine = slots[index].engine else { continue }
                    let view = JobView(membership, nowMs: nowMs)
                    log("slot \(index) (\(membership.status)) holds \(engine.holdings); record \(membership.members.count): "
                        + view.primaries.map { "\($0.key)=\($0.value.map { "\($0.address) e\($0.epoch)" } ?? "none")" }.sorted().joined(separator: " "))
                }
                log("client \(client.index) on slot \(client.connection.map { "\($0.slot)" } ?? "none")")
                throw violation("client \(client.index) has no answer for \(unanswered.count) of \(client.submitted) jobs "
                    + "(\(unanswered.prefix(5).map { client.key($0).value }), waiting \(client.outstanding.count), to resubmit \(client.again.count)) "
                    + "\(nowMs - scenario.faultsEndMs) ms after the last fault, \(nowMs - lastAnswerMs) ms after the last answer")
            }
        }
        for index in slots.indices {
            guard let engine = slots[index].engine else { continue }
            let holdings = engine.holdings
            guard holdings == JobEngine.Holdings(pending: 0, routed: 0, queued: 0, running: 0, waiting: 0, resend: 0) else {
                throw violation("slot \(index) still holds \(holdings) after every job was answered")
            }
        }
    }

    // MARK: Runs at once

    /// Property 6: a job (service and key) never runs at two processes at once — nor in two
    /// incarnations of one — in a calm period, and never twice at once in one incarnation.
    /// Delivery inside the cluster is at-least-once across crashes, partitions and failovers
    /// (docs/PROTOCOL.md, "Idempotency keys"); in calm periods the job path's routing must keep
    /// a key to one run.
    ///
    /// A run starts when the simulation carries out a `.run` directive and ends when it hands
    /// the handler's outcome to `JobEngine.finished`, or when its process stops (crash, kill,
    /// restart, the end of a drain). When a run starts while another run of the job is in progress
    /// at the same process in the same incarnation, that is a violation whatever happened (its
    /// executor holds what it runs, and attaches a dispatch of it). When it starts while another
    /// run is in progress at another process, or in another incarnation of this one, the overlap
    /// is excused if and only if a disturbance was in effect at some moment from `settleMs`
    /// (suspect-after + 2 intervals + 2 × the network's delay, the time property 1 gives a group
    /// to settle) before the job was first submitted (by any client, to any entry node) up to
    /// this start. The disturbances, counted by the first that holds, in this order:
    /// 1. a fault: an event of the scenario (every kind: crash, restart, kill of a primary or of
    ///    the busiest entry node, pause, partition, heal, link break, stall, silent loss, drain,
    ///    forgery, join burst, the restart of all that is down) or a drained process stopping,
    ///    each in effect at its instant; a pause or a stall for its duration; a partition until
    ///    it heals;
    /// 2. a change of primary: some process's record showed another primary of the job's service
    ///    (another address or epoch, or none; the `JobView` its engine follows);
    /// 3. a false suspicion: some record dropped a member of the job's service that was still
    ///    running (its heartbeats lost, late, or fenced out by a forgery).
    ///
    /// Otherwise it is a violation. Every start is counted (`runsChecked`), and of those the
    /// overlaps and the excused ones by disturbance, so the summary shows the check is not vacuous.
    ///
    /// Besides: a process never runs a job again that it already ran to the end in this
    /// incarnation — its recent outcomes answer any later dispatch of the key (kept longer than
    /// a run of the simulation lasts), whatever the faults.
    private func checkRunsAlone(_ id: JobID, at index: Int) throws(Violation) {
        runsChecked += 1
        let incarnation = slots[index].incarnation
        guard !slots[index].finishedHere.contains(id) else {
            throw violation("slot \(index) runs \(id) again after it ran it to the end in this incarnation")
        }
        let others = runsInProgress[id, default: []]
        runsInProgress[id, default: []].append(Run(slot: index, incarnation: incarnation, startMs: nowMs))
        guard let other = others.first else { return }
        runsOverlapped += 1
        // One process's executor holds what it runs: no fault explains running a key twice there.
        if let same = others.first(where: { $0.slot == index && $0.incarnation == incarnation }) {
            throw violation("slot \(index) runs \(id) while it already runs it (since \(same.startMs) ms)")
        }
        let submittedMs = firstSubmittedMs[id] ?? 0
        let sinceMs = submittedMs - settleMs
        // When each kind of disturbance was last in effect (now, while it still is).
        let faultMs = partitionSide != nil ? nowMs : max(lastFaultEventMs, min(nowMs, faultsInEffectUntilMs))
        let joinMs = slots.contains(where: { $0.membership?.status == .joining && $0.membership?.config.service == id.service })
            ? nowMs : lastAdmissionMs[id.service] ?? -1
        let changedMs = primaryChangedMs[id.service] ?? -1
        let droppedMs = falseDropMs[id.service] ?? -1
        let excuse: String
        if faultMs >= sinceMs {
            overlapsExcusedByFault += 1
            excuse = "a fault at \(faultMs) ms"
        } else if changedMs >= sinceMs {
            overlapsExcusedByPrimaryChange += 1
            excuse = "a change of primary at \(changedMs) ms"
        } else if droppedMs >= sinceMs {
            overlapsExcusedByFalseDrop += 1
            excuse = "a live member dropped at \(droppedMs) ms"
        } else {
            throw violation("\(id) runs at slot \(index) (incarnation \(incarnation)) while it runs at slot \(other.slot) "
                + "(incarnation \(other.incarnation), since \(other.startMs) ms), with no fault, change of primary or false "
                + "suspicion since \(settleMs) ms before it was first submitted at \(submittedMs) ms (last fault \(faultMs) ms, "
                + "last join \(joinMs) ms, primary of \(id.service) last changed \(changedMs) ms, a live member last dropped \(droppedMs) ms)")
        }
        if verbose { log("\(id) runs at slot \(index) and at slot \(other.slot) at once: excused by \(excuse)") }
    }

    /// How long a group takes to settle after a disturbance (property 1's bound).
    private var settleMs: Int64 { scenario.suspectAfterMs + 2 * scenario.intervalMs + 2 * scenario.maxDelayMs }

    /// A run of `id` at `index` ended: the handler's outcome goes to the engine.
    private func runEnded(_ id: JobID, at index: Int) {
        let incarnation = slots[index].incarnation
        slots[index].finishedHere.insert(id)
        guard let at = runsInProgress[id]?.firstIndex(where: { $0.slot == index && $0.incarnation == incarnation }) else { return }
        runsInProgress[id]!.remove(at: at)
        if runsInProgress[id]!.isEmpty { runsInProgress[id] = nil }
    }

    /// Notes when the view a process's engine follows shows another primary of a service than
    /// the last view it followed (another address or epoch, or none).
    private func notePrimaries(of view: JobView, at index: Int) {
        var seen: [ServiceName: PrimarySeen] = [:]
        for (service, primary) in view.primaries {
            if let primary { seen[service] = PrimarySeen(address: primary.address, epoch: primary.epoch) }
        }
        let before = slots[index].primariesSeen
        guard seen != before else { return }
        for service in Set(seen.keys).union(before.keys) where seen[service] != before[service] {
            primaryChangedMs[service] = nowMs
        }
        slots[index].primariesSeen = seen
    }

    // MARK: Properties

    /// Property 2: epochs per service type never decrease at any process.
    private func checkEpochsMonotonic(_ index: Int) throws(Violation) {
        guard let membership = slots[index].membership else { return }
        guard membership.epoch >= slots[index].lastEpoch else {
            throw violation("slot \(index)'s epoch fell from \(slots[index].lastEpoch) to \(membership.epoch)")
        }
        slots[index].lastEpoch = membership.epoch
        for (service, highest) in membership.highestEpoch {
            guard highest >= slots[index].lastHighest[service, default: 0] else {
                throw violation("slot \(index)'s highest epoch for \(service) fell to \(highest)")
            }
            slots[index].lastHighest[service] = highest
        }
    }

    private func checkAfterTick() throws(Violation) {
        // A paused process is not part of the group until it runs again.
        // Nor is a draining one: it is no candidate any more.
        let admitted = slots.indices.filter {
            slots[$0].isRunning && nowMs >= slots[$0].pausedUntilMs && slots[$0].membership!.status != .joining
                && !slots[$0].isDraining
        }
        let byService = Dictionary(grouping: admitted) { slots[$0].membership!.config.service }
        let settleMs = scenario.suspectAfterMs + 2 * scenario.intervalMs + 2 * scenario.maxDelayMs
        try followIslands(admitted)
        for (service, group) in byService.sorted(by: { $0.key < $1.key }) {
            let claimants = group.filter { slots[$0].membership!.status == .primary }
            try checkJoinsCauseNoSplit(service: service, claimants: claimants)
            // Property 1: a connected group with no new faults has exactly one primary per service
            // within suspectAfter + 2 × interval of the last fault, and every record agrees. A
            // forged number relayed on is the forgery still arriving; a crash within one detection
            // of another is detected in a second round (`detectedTwiceUntilMs`).
            let faultMs = max(lastFaultMs, lastForgedRelayMs, detectedTwiceUntilMs)
            guard partitionSide == nil, islands.isEmpty, lossRate == 0, nowMs >= faultMs + settleMs else { continue }
            guard claimants.count == 1 else {
                throw violation("\(claimants.count) primaries of \(service) \(nowMs - faultMs) ms after the last fault: slots \(claimants)")
            }
            let primaryID = slots[claimants[0]].membership!.id
            for index in group {
                let seen = slots[index].membership!.primary(of: service, nowMs: nowMs)?.id
                guard seen == primaryID else {
                    throw violation("slot \(index) sees \(seen?.short ?? "no primary") as primary of \(service), not \(primaryID.short)")
                }
            }
        }
        try checkOverlapBounded()
        if scenario.kind == .stability && nowMs >= 2_500 {
            // Paused processes count here: a paused primary is still the primary when it resumes.
            let running = slots.indices.filter { slots[$0].isRunning && slots[$0].membership!.status != .joining }
            try checkPrimariesStayPut(Dictionary(grouping: running) { slots[$0].membership!.config.service })
        }
    }

    /// Property 5: after the last fault, two processes never claim primary of one service (each in
    /// its own state, paused or not) for longer than suspectAfter + 2 × interval at a stretch, on a
    /// connected network without loss, whatever records a fault left behind: forged heartbeats
    /// that dropped a live member from some records, or fenced its own heartbeats out, included.
    private func checkOverlapBounded() throws(Violation) {
        let boundMs = scenario.suspectAfterMs + 2 * scenario.intervalMs
        let claimants = slots.indices.filter { slots[$0].membership?.status == .primary }
        let byService = Dictionary(grouping: claimants) { slots[$0].membership!.config.service }
        for service in scenario.services where byService[service, default: []].count < 2 { overlapSince[service] = nil }
        for (service, group) in byService.sorted(by: { $0.key < $1.key }) where group.count > 1 {
            let since = overlapSince[service] ?? nowMs
            overlapSince[service] = since
            longestOverlapMs = max(longestOverlapMs, nowMs - since)
            guard partitionSide == nil, islands.isEmpty, lossRate == 0 else { continue }
            let afterFault = nowMs - max(since, lastFaultMs)
            longestOverlapAfterFaultMs = max(longestOverlapAfterFaultMs, afterFault)
            guard afterFault <= boundMs else {
                throw violation("slots \(group) have all claimed primary of \(service) for \(afterFault) ms after the last fault "
                    + "(\(nowMs - since) ms in all), more than suspectAfter + 2 × interval (\(boundMs) ms)")
            }
        }
    }

    /// A settled cluster: 30 % loss and pauses shorter than the timeout change no primary.
    private func checkPrimariesStayPut(_ byService: [ServiceName: [Int]]) throws(Violation) {
        for (service, group) in byService.sorted(by: { $0.key < $1.key }) {
            let claimants = group.filter { slots[$0].membership!.status.claimsPrimary }.map { slots[$0].membership!.id }
            guard let settled = settledPrimaries[service] else {
                if claimants.count == 1 { settledPrimaries[service] = claimants[0] }
                continue
            }
            guard claimants == [settled] else {
                throw violation("primary of \(service) was \(settled.short), now claimed by \(claimants.map(\.short)) under loss and short pauses")
            }
        }
    }

    /// An island ends once a member of the group (not itself an island) knows it: that is a
    /// heal, from which properties 1 and 5 run again. Its seed back, it must end within
    /// `islandMergeBoundMs`.
    private func followIslands(_ admitted: [Int]) throws(Violation) {
        for (island, seedBackSinceMs) in islands.sorted(by: { $0.key < $1.key }) {
            let id = slots[island].membership!.id
            if admitted.contains(where: { islands[$0] == nil && slots[$0].membership!.members[id] != nil }) {
                if let back = seedBackSinceMs { longestIslandMergeMs = max(longestIslandMergeMs, nowMs - back) }
                islands[island] = nil
                lastFaultMs = max(lastFaultMs, nowMs)
                lastHealMs = nowMs
                continue
            }
            let seed = seedSlot(of: island)
            guard admitted.contains(seed), islands[seed] == nil, nowMs >= slots[seed].pausedUntilMs else {
                islands[island] = .some(nil)
                continue
            }
            let back = seedBackSinceMs ?? nowMs
            islands[island] = back
            guard nowMs - back <= Self.islandMergeBoundMs else {
                throw violation("slot \(island), admitted alone, is still apart \(nowMs - back) ms after its seed (slot \(seed)) was back")
            }
        }
    }

    /// Property 4: a process that joins never causes two primaries for longer than one interval
    /// (plus the network's delay, since the loser must hear the winner).
    private func checkJoinsCauseNoSplit(service: ServiceName, claimants: [Int]) throws(Violation) {
        // A healing partition brings two primaries together by design; loss can delay the loser's step-down.
        let settleMs = scenario.suspectAfterMs + 2 * scenario.intervalMs
        guard claimants.count > 1, partitionSide == nil, lossRate == 0, nowMs > lastHealMs + settleMs else {
            dualPrimarySince[service] = nil
            return
        }
        let since = dualPrimarySince[service] ?? nowMs
        dualPrimarySince[service] = since
        // A newcomer whose seed was down, paused or new itself through its discovery window heard of
        // no group: it starts its own, which meets the others as a partition heals (property 5).
        let newcomer = claimants.first {
            slots[$0].joinedThroughLiveSeed && slots[$0].admittedAtMs.map { since - $0 <= scenario.intervalMs } ?? false
        }
        let paused = claimants.contains { slots[$0].pausedUntilMs + scenario.suspectAfterMs > nowMs }
        if let newcomer, !paused, nowMs - since > scenario.intervalMs + 2 * scenario.maxDelayMs {
            throw violation("newcomer slot \(newcomer) left two primaries of \(service) for \(nowMs - since) ms")
        }
    }

    /// The network heals completely once the faults are over: the liveness phase must converge.
    private var lossRate: Double { nowMs >= scenario.faultsEndMs ? 0 : scenario.lossRate }

    private func violation(_ message: String) -> Violation {
        Violation(seed: seed, atMs: nowMs, message: message, scenario: scenario.description, replay: replayCommand, trace: trace)
    }

    private func log(_ line: String) {
        let entry = "\(nowMs) ms: \(line)"
        if verbose { print(entry) }
        trace.append(entry)
        if trace.count > 400 { trace.removeFirst(200) }
    }
}
