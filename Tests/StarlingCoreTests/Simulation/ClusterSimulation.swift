import HeapModule
import StarlingCore

/// Runs many processes of the membership core in one test, over a simulated clock and network
/// (loss, duplication, reordering, delay, partitions), with crashes, restarts, pauses and join
/// bursts, and checks the properties of DESIGN.md §2 after every step.
///
/// Everything random comes from the root seed, so `STARLING_SIM_SEED=<seed>` replays a run exactly.
final class ClusterSimulation {
    struct Violation: Error, CustomStringConvertible {
        let seed: UInt64
        let atMs: Int64
        let message: String
        let scenario: String
        let trace: [String]

        var description: String {
            """
            seed \(seed) violated a property at \(atMs) ms: \(message)
              scenario: \(scenario)
              replay: STARLING_SIM_SEED=\(seed) swift test -c release --filter SimulationTests
              last events:
            \(trace.suffix(40).map { "    " + $0 }.joined(separator: "\n"))
            """
        }
    }

    struct Slot {
        var address: NodeAddress
        var membership: Membership?
        var incarnation = 0
        var pausedUntilMs: Int64 = 0
        var admittedAtMs: Int64?
        /// Checker state: the highest epoch per service this process was shown, and its last readings.
        var epochsObserved: [ServiceName: UInt64] = [:]
        var lastEpoch: UInt64 = 0
        var lastHighest: [ServiceName: UInt64] = [:]

        var isRunning: Bool { membership != nil }
    }

    private struct Event: Comparable {
        enum Kind {
            case fault(SimulationScenario.Fault)
            case tick(slot: Int, incarnation: Int)
            case deliver(bytes: [UInt8], to: Int)
            case dispatch(epoch: UInt64, service: ServiceName, to: Int)
        }

        var atMs: Int64
        /// At one instant, faults go first, then timers (as libuv runs timers before polling I/O), then packets.
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
    private var lastHealMs: Int64 = -1_000_000
    private var trace: [String] = []
    private var dualPrimarySince: [ServiceName: Int64] = [:]
    private var settledPrimaries: [ServiceName: NodeID] = [:]
    private(set) var messagesDelivered = 0

    init(seed: UInt64, maxProcesses: Int = 12, verbose: Bool = false) {
        var root = SeededRandom(seed: seed)
        var shape = root.fork()
        self.seed = seed
        self.scenario = seed % 4 == 3
            ? .stability(&shape, maxProcesses: maxProcesses)
            : .chaos(&shape, maxProcesses: maxProcesses)
        self.network = root.fork()
        self.identities = root.fork()
        self.verbose = verbose
        self.slots = (0..<scenario.processCount).map { index in
            Slot(address: .ipv4(127, 0, 0, 1, port: UInt16(20_000 + index)))
        }
        for (index, slot) in slots.enumerated() { slotAt[slot.address] = index }
    }

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
        lastFaultMs = 0
        while let event = events.popMin(), event.atMs <= scenario.endMs {
            nowMs = event.atMs
            try handle(event)
        }
    }

    // MARK: Events

    private func schedule(_ kind: Event.Kind, atMs: Int64, phase: Int) {
        nextOrder += 1
        events.insert(Event(atMs: atMs, phase: phase, order: nextOrder, kind: kind))
    }

    private func handle(_ event: Event) throws(Violation) {
        switch event.kind {
        case .fault(let fault):
            apply(fault)
        case .tick(let index, let incarnation):
            guard slots[index].isRunning, slots[index].incarnation == incarnation else { return }
            if nowMs < slots[index].pausedUntilMs {
                schedule(event.kind, atMs: slots[index].pausedUntilMs, phase: 1)
                return
            }
            let directives = slots[index].membership!.tick(nowMs: nowMs)
            try carryOut(directives, from: index)
            sendDispatch(from: index)
            schedule(event.kind, atMs: nowMs + scenario.intervalMs, phase: 1)
            try checkAfterTick()
        case .deliver(let bytes, let index):
            guard slots[index].isRunning else { return }
            if nowMs < slots[index].pausedUntilMs {
                schedule(event.kind, atMs: slots[index].pausedUntilMs, phase: 2)
                return
            }
            guard case .success(let heartbeat) = HeartbeatCodec.decode(bytes) else {
                throw violation("a heartbeat the core encoded did not decode")
            }
            messagesDelivered += 1
            slots[index].epochsObserved[heartbeat.service] = max(slots[index].epochsObserved[heartbeat.service, default: 0], heartbeat.epoch)
            let directives = slots[index].membership!.receive(heartbeat, nowMs: nowMs)
            try carryOut(directives, from: index)
        case .dispatch(let epoch, let service, let index):
            guard slots[index].isRunning, nowMs >= slots[index].pausedUntilMs,
                  slots[index].membership!.config.service == service else { return }
            let floor = slots[index].epochsObserved[service, default: 0]
            if slots[index].membership!.admitDispatch(epoch: epoch) {
                // Property 3: no standby executes a dispatch older than an epoch it has seen.
                guard epoch >= floor else {
                    throw violation("slot \(index) accepted a dispatch at epoch \(epoch) after seeing epoch \(floor)")
                }
                slots[index].epochsObserved[service] = epoch
            }
            try checkEpochsMonotonic(index)
        }
    }

    private func apply(_ fault: SimulationScenario.Fault) {
        lastFaultMs = max(lastFaultMs, nowMs)
        log("fault \(fault)")
        switch fault {
        case .crash(let index):
            slots[index].membership = nil
        case .restart(let index):
            start(index)
        case .joinBurst(let indices):
            for index in indices { start(index) }
        case .pause(let index, let durationMs):
            slots[index].pausedUntilMs = max(slots[index].pausedUntilMs, nowMs + durationMs)
            lastFaultMs = max(lastFaultMs, nowMs + durationMs)
        case .partition(let side):
            partitionSide = side
        case .heal:
            partitionSide = nil
            lastHealMs = nowMs
        }
    }

    private func start(_ index: Int) {
        let seeds = index == 0 ? [slots[1 % slots.count].address] : [slots[0].address]
        let config = MembershipConfig(
            service: scenario.services[index], priority: scenario.priorities[index],
            address: slots[index].address, seeds: seeds, intervalMs: scenario.intervalMs)
        let id = NodeID(admittedAtUnixMs: 1_700_000_000_000 + UInt64(nowMs), using: &identities)
        var membership = Membership(config: config, id: id)
        let directives = membership.start(nowMs: nowMs)
        slots[index].membership = membership
        slots[index].incarnation += 1
        slots[index].pausedUntilMs = 0
        slots[index].admittedAtMs = nil
        slots[index].epochsObserved = [:]
        slots[index].lastEpoch = 0
        slots[index].lastHighest = [:]
        log("start slot \(index) as \(id.short) (\(config.service), priority \(config.priority))")
        try? carryOut(directives, from: index)
        schedule(.tick(slot: index, incarnation: slots[index].incarnation), atMs: nowMs + scenario.intervalMs, phase: 1)
    }

    private func carryOut(_ directives: [MembershipDirective], from index: Int) throws(Violation) {
        for directive in directives {
            switch directive {
            case .send(let heartbeat, let targets):
                let bytes = HeartbeatCodec.encode(heartbeat)
                for target in targets { transmit(bytes, from: index, to: target) }
            case .statusChanged(let from, let to, let epoch, let reason):
                log("slot \(index) \(from) -> \(to) epoch \(epoch): \(reason)")
                if from == .joining {
                    slots[index].admittedAtMs = nowMs
                    // An admission can start a handover to a higher-priority newcomer: the group settles from here.
                    lastFaultMs = max(lastFaultMs, nowMs)
                }
            case .memberJoined(let member):
                if verbose { log("slot \(index) learns \(member.id.short) \(member.status)") }
            case .memberLeft(let member, let reason):
                log("slot \(index) drops \(member.id.short): \(reason.rawValue)")
            case .ignored(let reason, let from):
                log("slot \(index) ignored heartbeat from \(from): \(reason)")
            }
        }
        try checkEpochsMonotonic(index)
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

    /// A primary hands a (pretend) job to one standby of its record, stamped with its epoch.
    private func sendDispatch(from index: Int) {
        guard let membership = slots[index].membership, membership.status == .primary else { return }
        let standbys = membership.members.values
            .filter { $0.service == membership.config.service && $0.status == .standby }
            .sorted { $0.id < $1.id }
        guard let target = standbys.randomElement(using: &network), let receiver = slotAt[target.address] else { return }
        if let side = partitionSide, side.contains(index) != side.contains(receiver) { return }
        if network.chance(lossRate) { return }
        let delay = Int64.random(in: scenario.minDelayMs...scenario.maxDelayMs, using: &network)
        schedule(.dispatch(epoch: membership.epoch, service: membership.config.service, to: receiver), atMs: nowMs + delay, phase: 2)
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
        let admitted = slots.indices.filter {
            slots[$0].isRunning && nowMs >= slots[$0].pausedUntilMs && slots[$0].membership!.status != .joining
        }
        let byService = Dictionary(grouping: admitted) { slots[$0].membership!.config.service }
        let settleMs = scenario.suspectAfterMs + 2 * scenario.intervalMs + 2 * scenario.maxDelayMs
        for (service, group) in byService.sorted(by: { $0.key < $1.key }) {
            let claimants = group.filter { slots[$0].membership!.status == .primary }
            try checkJoinsCauseNoSplit(service: service, claimants: claimants)
            // Property 1: a connected group with no new faults has exactly one primary per service
            // within suspectAfter + 2 × interval of the last fault, and every record agrees.
            guard partitionSide == nil, lossRate == 0, nowMs >= lastFaultMs + settleMs else { continue }
            guard claimants.count == 1 else {
                throw violation("\(claimants.count) primaries of \(service) \(nowMs - lastFaultMs) ms after the last fault: slots \(claimants)")
            }
            let primaryID = slots[claimants[0]].membership!.id
            for index in group {
                let seen = slots[index].membership!.primary(of: service, nowMs: nowMs)?.id
                guard seen == primaryID else {
                    throw violation("slot \(index) sees \(seen?.short ?? "no primary") as primary of \(service), not \(primaryID.short)")
                }
            }
        }
        if scenario.kind == .stability && nowMs >= 2_500 {
            // Paused processes count here: a paused primary is still the primary when it resumes.
            let running = slots.indices.filter { slots[$0].isRunning && slots[$0].membership!.status != .joining }
            try checkPrimariesStayPut(Dictionary(grouping: running) { slots[$0].membership!.config.service })
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
        let newcomer = claimants.first { slots[$0].admittedAtMs.map { since - $0 <= scenario.intervalMs } ?? false }
        let paused = claimants.contains { slots[$0].pausedUntilMs + scenario.suspectAfterMs > nowMs }
        if let newcomer, !paused, nowMs - since > scenario.intervalMs + 2 * scenario.maxDelayMs {
            throw violation("newcomer slot \(newcomer) left two primaries of \(service) for \(nowMs - since) ms")
        }
    }

    /// The network heals completely once the faults are over: the liveness phase must converge.
    private var lossRate: Double { nowMs >= scenario.faultsEndMs ? 0 : scenario.lossRate }

    private func violation(_ message: String) -> Violation {
        Violation(seed: seed, atMs: nowMs, message: message, scenario: scenario.description, trace: trace)
    }

    private func log(_ line: String) {
        let entry = "\(nowMs) ms: \(line)"
        if verbose { print(entry) }
        trace.append(entry)
        if trace.count > 400 { trace.removeFirst(200) }
    }
}
