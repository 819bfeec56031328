import StarlingCore
import Testing
import StarlingTestSupport

// MARK: - Records by hand

private let echo = try! ServiceName("echo")
private let sha = try! ServiceName("sha256")

private func definition(
    _ service: ServiceName = echo, min: Int = 1, max: Int = 8, concurrency: Int = 4, backlog: Int = 4, idleMs: Int64 = 10_000
) -> ServiceDefinition {
    ServiceDefinition(
        service: service, handler: .builtin(.echo), concurrency: concurrency, minWorkers: min, maxWorkers: max,
        scaleUpBacklog: backlog, scaleDownIdleMs: idleMs)
}

private func worker(
    _ n: UInt64, _ service: ServiceName = echo, _ status: MemberStatus = .standby, running: UInt32 = 0, capacity: UInt32 = 4,
    backlog: UInt32 = 0, host: UInt8 = 1, leaving: Bool = false
) -> Member {
    Member(
        id: NodeID(high: 1_000 + n, low: 0), service: service, status: status, priority: 0, epoch: 1,
        workload: Workload(running: running, capacity: capacity, backlog: backlog),
        address: .ipv4(10, 0, 0, host, port: UInt16(2_000 + n)), lastHeardMs: 0, sequence: 1, leaving: leaving)
}

/// An agent on host 10.0.0.`host` that may host `capacity` workers and hosts `running`.
private func agent(host: UInt8, capacity: UInt32 = 8, running: UInt32 = 0, status: MemberStatus = .standby) -> Member {
    Member(
        id: NodeID(high: UInt64(host), low: 0), service: .agent, status: status, priority: 0, epoch: 1,
        workload: Workload(running: running, capacity: capacity, backlog: 0),
        address: agentAddress(host), lastHeardMs: 0, sequence: 1)
}

private func agentAddress(_ host: UInt8) -> NodeAddress { .ipv4(10, 0, 0, host, port: 7_000) }

private extension ScalingDirective {
    var agent: NodeAddress? {
        if case .spawn(_, let agent, _) = self { return agent }
        return nil
    }
    var retired: NodeAddress? {
        if case .retire(_, let worker, _) = self { return worker }
        return nil
    }
    var isSpawn: Bool { agent != nil }
}

/// Ticks every 100 ms from `fromMs` up to and excluding `toMs` with the same record; every directive.
private func run(_ scaler: inout Scaler, from fromMs: Int64, to toMs: Int64, _ members: [Member]) -> [ScalingDirective] {
    stride(from: fromMs, to: toMs, by: 100).flatMap { scaler.tick(nowMs: $0, members: members) }
}

@Suite struct ScalerTests {
    // MARK: Bounds

    @Test func aServiceWithNoWorkerGetsOneAtOnceOnTheAgentWithTheMostHeadroom() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        let agents = [agent(host: 1, capacity: 4, running: 1), agent(host: 2, capacity: 8, running: 2), agent(host: 3, capacity: 2)]
        let directives = scaler.tick(nowMs: 0, members: agents)
        #expect(directives.count == 1)
        guard case .spawn(let service, let at, _) = directives.first else { Issue.record("no spawn: \(directives)"); return }
        #expect(service == echo)
        #expect(at == agentAddress(2))
        #expect(scaler.spawnsInFlight(for: echo) == 1)
        #expect(scaler.reports[echo]?.workers == 1)
        #expect(scaler.blocked.isEmpty)
    }

    @Test func equalHeadroomGoesToTheLowerAddressAndSpawnsOnTheirWayCountAgainstIt() {
        var scaler = Scaler(definitions: [echo: definition(min: 1), sha: definition(sha, min: 1)])
        let agents = [agent(host: 3, capacity: 2), agent(host: 2, capacity: 2)]
        let directives = scaler.tick(nowMs: 0, members: agents)
        // echo is decided first (by name) and takes host 2; sha256 then finds host 3 with more headroom.
        #expect(directives.map(\.agent) == [agentAddress(2), agentAddress(3)])
    }

    @Test func onlyDefinedServicesAreScaledAndNeverTheAgents() {
        let agentDefinition = ServiceDefinition(service: .agent, handler: .builtin(.echo), minWorkers: 3, maxWorkers: 3)
        var scaler = Scaler(definitions: [echo: definition(min: 1), .agent: agentDefinition])
        let unknown = try! ServiceName("resize")
        let record = [agent(host: 1), worker(1, echo, .primary), worker(2, unknown, .primary, backlog: 1_000)]
            + (3...12).map { worker($0, unknown) }
        #expect(run(&scaler, from: 0, to: 60_000, record).isEmpty)
        #expect(scaler.reports.keys.sorted() == [echo])
    }

    @Test func aDeadWorkerIsReplacedAtOnce() {
        var scaler = Scaler(definitions: [echo: definition(min: 3)])
        let full = [agent(host: 1), worker(1, echo, .primary), worker(2), worker(3)]
        #expect(run(&scaler, from: 0, to: 5_000, full).isEmpty)
        let afterDeath = [agent(host: 1), worker(1, echo, .primary), worker(3)]
        let directives = scaler.tick(nowMs: 5_000, members: afterDeath)
        #expect(directives.count == 1 && directives.first?.isSpawn == true)
        // A worker draining (SIGTERM by an operator) no longer counts either.
        let replaced = afterDeath + [worker(4)]
        #expect(run(&scaler, from: 5_100, to: 10_000, replaced).isEmpty)
        let draining = [agent(host: 1), worker(1, echo, .primary), worker(3, leaving: true), worker(4)]
        #expect(scaler.tick(nowMs: 10_000, members: draining).first?.isSpawn == true)
    }

    @Test func oneSpawnOnItsWayAtATimeThenTheNext() {
        var scaler = Scaler(definitions: [echo: definition(min: 3)])
        let agents = [agent(host: 1), agent(host: 2)]
        #expect(scaler.tick(nowMs: 0, members: agents).count == 1)
        #expect(run(&scaler, from: 100, to: 5_000, agents).isEmpty)
        #expect(scaler.spawnsInFlight(for: echo) == 1)
        // It appears (joining): the next one is asked for at once (a replacement ignores cool-downs).
        let one = agents + [worker(1, echo, .joining)]
        let next = scaler.tick(nowMs: 5_000, members: one)
        #expect(next.count == 1 && next.first?.isSpawn == true)
        #expect(scaler.reports[echo]?.workers == 2)
    }

    @Test func atMostFourSpawnsOnTheirWayInAllReplacementsFirst() {
        let names = (1...6).map { try! ServiceName("svc\($0)") }
        let definitions = Dictionary(uniqueKeysWithValues: names.map { ($0, definition($0, min: 1)) })
        var scaler = Scaler(definitions: definitions)
        // svc1...svc5 have a long backlog on their lone primary; svc6 has no worker.
        let record = [agent(host: 1, capacity: 100)] + names.prefix(5).enumerated().map { index, name in
            worker(UInt64(index), name, .primary, running: 4, backlog: 100)
        }
        let directives = run(&scaler, from: 0, to: 1_100, record)
        let services = directives.compactMap { directive -> ServiceName? in
            if case .spawn(let service, _, _) = directive { return service }
            return nil
        }
        #expect(services == [names[5], names[0], names[1], names[2]])
    }

    @Test func neverAboveMaxAndAnOverflowRetiresAStandbyNotThePrimary() {
        var scaler = Scaler(definitions: [echo: definition(min: 1, max: 2)])
        let busy = [agent(host: 1), worker(1, echo, .primary, backlog: 500), worker(2, running: 4)]
        #expect(run(&scaler, from: 0, to: 30_000, busy).isEmpty)
        #expect(scaler.blocked[echo]?.contains("max_workers 2") == true)
        // Someone started two more by hand: one is retired per tick until back at max.
        let crowded = busy + [worker(3, running: 1), worker(4, running: 3)]
        let first = scaler.tick(nowMs: 30_000, members: crowded)
        #expect(first.map(\.retired) == [worker(3).address])
        #expect(scaler.tick(nowMs: 30_100, members: crowded).isEmpty)  // one retirement at a time
        let drainingOne = busy + [worker(3, running: 1, leaving: true), worker(4, running: 3)]
        #expect(scaler.tick(nowMs: 30_200, members: drainingOne).map(\.retired) == [worker(4).address])
    }

    @Test func aSpawnNotSeenInTimeIsRetriedOnAnotherAgent() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        let agents = [agent(host: 1, capacity: 8), agent(host: 2, capacity: 4)]
        #expect(scaler.tick(nowMs: 0, members: agents).map(\.agent) == [agentAddress(1)])
        #expect(run(&scaler, from: 100, to: 15_000, agents).isEmpty)
        #expect(scaler.tick(nowMs: 15_000, members: agents).map(\.agent) == [agentAddress(2)])
    }

    @Test func aFailedSpawnIsRetriedElsewhereAtTheNextTick() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        let agents = [agent(host: 1, capacity: 8), agent(host: 2, capacity: 4)]
        #expect(scaler.tick(nowMs: 0, members: agents).map(\.agent) == [agentAddress(1)])
        scaler.spawnFailed(service: echo, agent: agentAddress(1), nowMs: 50)
        #expect(scaler.tick(nowMs: 100, members: agents).map(\.agent) == [agentAddress(2)])
    }

    @Test func aSpawnWhoseAgentDiesIsRetriedAtOnce() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        #expect(scaler.tick(nowMs: 0, members: [agent(host: 1), agent(host: 2)]).map(\.agent) == [agentAddress(1)])
        #expect(scaler.tick(nowMs: 100, members: [agent(host: 2)]).map(\.agent) == [agentAddress(2)])
    }

    @Test func noHeadroomMeansNoSpawnAndSaysWhy() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        #expect(run(&scaler, from: 0, to: 2_000, []).isEmpty)
        #expect(scaler.blocked[echo]?.contains("no agent") == true)
        let full = [agent(host: 1, capacity: 2, running: 2), agent(host: 2, capacity: 1, running: 1),
                    agent(host: 3, capacity: 9, running: 0, status: .primary)].map { member -> Member in
            var member = member
            member.leaving = member.workload.running == 0  // the one with room is draining
            return member
        }
        #expect(run(&scaler, from: 2_000, to: 4_000, full).isEmpty)
        #expect(scaler.blocked[echo]?.contains("no agent with headroom") == true)
        #expect(scaler.spawnsInFlight(for: echo) == 0)
        let roomy = [agent(host: 1, capacity: 3, running: 2)]
        #expect(scaler.tick(nowMs: 4_000, members: roomy).map(\.agent) == [agentAddress(1)])
        #expect(scaler.blocked.isEmpty)
    }

    // MARK: Demand

    @Test func scaleUpWaitsForSustainedBacklogAndTheCoolDown() {
        var scaler = Scaler(definitions: [echo: definition(min: 1, max: 8)])
        let quiet = [agent(host: 1), worker(1, echo, .primary), worker(2, running: 4), worker(3, running: 4)]
        #expect(run(&scaler, from: 0, to: 3_000, quiet).isEmpty)
        // 9 queued for 2 executing standbys: above 4 each, for 900 ms, then gone: nothing.
        let blip = [agent(host: 1), worker(1, echo, .primary, backlog: 9), worker(2, running: 4), worker(3, running: 4)]
        #expect(run(&scaler, from: 3_000, to: 3_900, blip).isEmpty)
        #expect(run(&scaler, from: 3_900, to: 5_000, quiet).isEmpty)
        // Exactly 8 (4 each) is not above the threshold.
        let atThreshold = [agent(host: 1), worker(1, echo, .primary, backlog: 8), worker(2, running: 4), worker(3, running: 4)]
        #expect(run(&scaler, from: 5_000, to: 10_000, atThreshold).isEmpty)
        // Sustained for a second: one spawn, at 1 s.
        let directives = stride(from: Int64(10_000), to: 11_100, by: 100).map { ($0, scaler.tick(nowMs: $0, members: blip)) }
        #expect(directives.filter { !$0.1.isEmpty }.map(\.0) == [11_000])
        // It appears; with 3 executing standbys, 20 queued is still too many, but the next spawn
        // waits for the cool-down (2 s from when it was seen).
        let grown = [agent(host: 1), worker(1, echo, .primary, backlog: 20), worker(2, running: 4), worker(3, running: 4),
                     worker(4, running: 4)]
        let later = stride(from: Int64(11_100), to: 14_000, by: 100).map { ($0, scaler.tick(nowMs: $0, members: grown)) }
        #expect(later.filter { !$0.1.isEmpty }.map(\.0) == [13_100])
    }

    @Test func scaleDownRetiresTheLeastLoadedStandbyAfterTheIdlePeriodOnly() {
        var scaler = Scaler(definitions: [echo: definition(min: 1, idleMs: 10_000)])
        // Four standbys of 4 slots, 5 running: without the idlest, 12 slots are left and 5 ≤ 6.
        let record = [agent(host: 1), worker(1, echo, .primary), worker(2, running: 2), worker(3, running: 1),
                      worker(4, running: 0), worker(5, running: 2)]
        let directives = stride(from: Int64(0), to: 10_100, by: 100).map { ($0, scaler.tick(nowMs: $0, members: record)) }
        #expect(directives.filter { !$0.1.isEmpty }.map(\.0) == [10_000])
        #expect(directives.last?.1.map(\.retired) == [worker(4).address])
        // Seven running: 7 > half of the 12 slots that would be left: nobody goes.
        var busier = Scaler(definitions: [echo: definition(min: 1, idleMs: 10_000)])
        let seven = [agent(host: 1), worker(1, echo, .primary), worker(2, running: 2), worker(3, running: 2),
                     worker(4, running: 1), worker(5, running: 2)]
        #expect(run(&busier, from: 0, to: 60_000, seven).isEmpty)
    }

    @Test func theLastWorkerIsNeverRetired() {
        var keepOne = Scaler(definitions: [echo: definition(min: 1, idleMs: 1_000)])
        let alone = [agent(host: 1), worker(1, echo, .primary)]
        #expect(run(&keepOne, from: 0, to: 30_000, alone).isEmpty)
    }

    // MARK: A service in motion

    @Test func aBurstScalesUpStepByStepToMaxThenBackToMinRetiringStandbysOnly() {
        var model = ServiceModel(definition: definition(min: 1, max: 6, idleMs: 10_000), jobMs: 200, seed: 1) { t in
            t < 10_000 ? 10 : t < 40_000 ? 150 : 0
        }
        model.run(until: 150_000)
        let spawns = model.events.filter { $0.directive.isSpawn }
        let retires = model.events.filter { !$0.directive.isSpawn }
        #expect(model.maxWorkersSeen == 6)
        #expect(model.maxSpawnsInFlight == 1)
        // The first worker at once (below min_workers), then five for the burst.
        #expect(spawns.count == 6, "\(model.log)")
        // Step by step: each spawn after the previous one appeared plus the cool-down.
        for (previous, next) in zip(spawns.dropFirst(), spawns.dropFirst(2)) {
            #expect(next.atMs - previous.atMs >= 2_500, "\(model.log)")
        }
        #expect(retires.count == 5, "\(model.log)")
        #expect(retires.allSatisfy { $0.targetStatus == .standby }, "\(model.log)")
        #expect((retires.first?.atMs ?? 0) >= model.lastBacklogMs + 10_000, "\(model.log)")
        #expect(model.activeWorkers == 1)
        #expect(model.lostJobs == 0)
    }

    @Test func steadyLoadAtHalfCapacitySettlesAndNeverFlaps() {
        // max 8 × 4 slots; at most 7 standbys execute: 28 slots; 70 jobs/s of 200 ms is 14 running.
        for rate in [10.0, 40, 70, 100] {
            var model = ServiceModel(definition: definition(min: 1, max: 8), jobMs: 200, seed: 0) { _ in rate }
            model.run(until: 60_000)
            let settled = model.events.count
            model.run(until: 240_000)
            #expect(model.events.count == settled, "rate \(rate): \(model.log)")
            #expect(model.lostJobs == 0)
        }
    }

    @Test(arguments: 1...8 as ClosedRange<UInt64>)
    func noisyLoadAtHalfCapacityNeverFlapsOnceSettled(seed: UInt64) {
        // 70 jobs/s ± 30 %, drawn each second: 9.8 to 18.2 running on average, of 28 slots.
        var model = ServiceModel(definition: definition(min: 1, max: 8), jobMs: 200, seed: seed, noise: 0.3) { _ in 70 }
        model.run(until: 60_000)
        let settled = model.events.count
        model.run(until: 240_000)
        #expect(model.events.count == settled, "seed \(seed): \(model.log)")
        #expect(model.lostJobs == 0)
    }

    /// At any noisy load, once settled, nothing is ever added (no capacity was missing) and there is
    /// no reversal: what remains is at most the trimming of what the start-up queue made it admit,
    /// when the load sits near the point where a retirement is allowed.
    @Test(arguments: 1...8 as ClosedRange<UInt64>)
    func noisyLoadAtAnyLevelNeverReversesOnceSettled(seed: UInt64) {
        for rate in stride(from: 20.0, through: 130, by: 10) {
            var model = ServiceModel(definition: definition(min: 1, max: 8), jobMs: 200, seed: seed, noise: 0.3) { _ in rate }
            model.run(until: 60_000)
            let settled = model.events.count
            model.run(until: 240_000)
            let late = model.events.dropFirst(settled)
            #expect(late.allSatisfy { !$0.directive.isSpawn }, "seed \(seed) rate \(rate): \(model.log)")
            #expect(late.count <= 1, "seed \(seed) rate \(rate): \(model.log)")
        }
    }

    // MARK: Definitions replaced (an agent's SIGHUP reload)

    @Test func anAddedServiceGetsItsWorkersAtTheNextTickAndTheOthersAreLeftAlone() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        let record = [agent(host: 1), agent(host: 2), worker(1, echo, .primary)]
        #expect(run(&scaler, from: 0, to: 1_000, record).isEmpty)

        let changes = scaler.replaceDefinitions([echo: definition(min: 1), sha: definition(sha, min: 2)])
        #expect(changes == ServiceDefinitionChanges(added: [sha]))
        let first = scaler.tick(nowMs: 1_000, members: record)
        guard case .spawn(sha, _, let reason)? = first.first, first.count == 1 else {
            Issue.record("expected one spawn of sha256: \(first)")
            return
        }
        #expect(reason == "0 of min_workers 2")
        // The second follows once the first is seen; echo, already in bounds, gets nothing.
        let later = run(&scaler, from: 1_100, to: 3_000, record + [worker(2, sha, .primary, host: 2)])
        #expect(later.count == 1 && later.allSatisfy { if case .spawn(sha, _, _) = $0 { true } else { false } }, "\(later)")
    }

    @Test func aChangedDefinitionIsJudgedByItsNewBoundsAndKeepsWhatIsOnItsWay() {
        var scaler = Scaler(definitions: [echo: definition(min: 2)])
        let record = [agent(host: 1), worker(1, echo, .primary)]
        let spawned = scaler.tick(nowMs: 0, members: record)
        #expect(spawned.count == 1 && spawned.allSatisfy(\.isSpawn))
        #expect(scaler.spawnsInFlight(for: echo) == 1)

        // Same bounds, another concurrency: the spawn on its way still counts, none is added.
        var changed = scaler.replaceDefinitions([echo: definition(min: 2, concurrency: 8)])
        #expect(changed == ServiceDefinitionChanges(changed: [echo]))
        #expect(scaler.spawnsInFlight(for: echo) == 1)
        #expect(scaler.tick(nowMs: 100, members: record).isEmpty)
        #expect(scaler.definitions[echo]?.concurrency == 8)

        // min_workers raised to 3: one more once the first spawn is seen.
        changed = scaler.replaceDefinitions([echo: definition(min: 3, concurrency: 8)])
        #expect(changed == ServiceDefinitionChanges(changed: [echo]))
        let next = scaler.tick(nowMs: 200, members: record + [worker(2)])
        #expect(next.count == 1 && next.allSatisfy(\.isSpawn), "\(next)")

        // The same set again changes nothing.
        #expect(scaler.replaceDefinitions([echo: definition(min: 3, concurrency: 8)]).isEmpty)
    }

    @Test func aRemovedServiceIsForgottenNeitherReplacedNorRetired() {
        var scaler = Scaler(definitions: [echo: definition(min: 1), sha: definition(sha, min: 1, max: 1)])
        let record = [agent(host: 1), worker(1, echo, .primary), worker(2, sha, .primary), worker(3, sha)]
        _ = scaler.tick(nowMs: 0, members: record)
        #expect(scaler.reports[sha] != nil)

        let changes = scaler.replaceDefinitions([echo: definition(min: 1)])
        #expect(changes == ServiceDefinitionChanges(removed: [sha]))
        #expect(scaler.reports[sha] == nil)
        // Two sha256 workers over its old max_workers, then none at all: nothing is asked of either.
        #expect(run(&scaler, from: 100, to: 20_000, record).isEmpty)
        #expect(run(&scaler, from: 20_000, to: 40_000, [agent(host: 1), worker(1, echo, .primary)]).isEmpty)
        #expect(scaler.reports[sha] == nil && scaler.blocked.isEmpty)

        // Defined again, it starts afresh: a worker at once.
        #expect(scaler.replaceDefinitions([echo: definition(min: 1), sha: definition(sha, min: 1)]).added == [sha])
        let again = scaler.tick(nowMs: 40_000, members: [agent(host: 1), worker(1, echo, .primary)])
        #expect(again.count == 1 && again.allSatisfy { if case .spawn(sha, _, _) = $0 { true } else { false } }, "\(again)")
    }

    @Test func aReplacementNeverDefinesTheAgents() {
        var scaler = Scaler(definitions: [echo: definition(min: 1)])
        let agentDefinition = ServiceDefinition(service: .agent, handler: .builtin(.echo), minWorkers: 3, maxWorkers: 3)
        let changes = scaler.replaceDefinitions([echo: definition(min: 1), .agent: agentDefinition])
        #expect(changes.isEmpty)
        #expect(scaler.definitions[.agent] == nil)
    }

    @Test func theSameInputsGiveTheSameDecisions() {
        func events() -> [String] {
            var model = ServiceModel(definition: definition(min: 2, max: 8), jobMs: 150, seed: 42, noise: 0.3) { t in
                t < 30_000 ? 120 : 20
            }
            model.run(until: 120_000)
            return model.log
        }
        let first = events()
        #expect(!first.isEmpty)
        #expect(events() == first)
    }
}

// MARK: - A service in motion

/// A deterministic model of one service type under the scaler, stepped every 10 ms: agents start
/// workers `spawnDelayMs` after a spawn, which join and are admitted `admissionMs` later; the oldest
/// admitted worker is primary; jobs arrive at `rate(t)` jobs/s (times a seeded factor in
/// 1 ± `noise`, drawn each second), wait in the primary's queue and run `jobMs` on the executors
/// (the standbys, or the primary alone), least-loaded first. The scaler ticks every 100 ms with
/// the record as heartbeats would carry it.
private struct ServiceModel {
    struct Worker {
        var id: NodeID
        var address: NodeAddress
        var admittedAtMs: Int64
        var status: MemberStatus = .joining
        var leaving = false
        /// Finish times of the jobs it runs.
        var jobs: [Int64] = []
    }

    struct Event {
        var atMs: Int64
        var directive: ScalingDirective
        /// The status of the retired worker when it was asked.
        var targetStatus: MemberStatus?
    }

    let definition: ServiceDefinition
    let jobMs: Int64
    let noise: Double
    let rate: (Int64) -> Double
    let spawnDelayMs: Int64 = 500
    let admissionMs: Int64 = 350
    let agentHosts: [UInt8] = [1, 2]
    let agentCapacity: UInt32 = 16

    var scaler: Scaler
    var rng: SeededRandom
    var nowMs: Int64 = 0
    var workers: [Worker] = []
    /// Spawns an agent is carrying out: where, and when the worker appears.
    var starting: [(host: UInt8, atMs: Int64)] = []
    var queue = 0
    var arrivals = 0.0
    var factor = 1.0
    var nextWorker: UInt64 = 1
    var events: [Event] = []
    /// Jobs that found no worker at all, once the first one had been started.
    var lostJobs = 0
    var maxWorkersSeen = 0
    var maxSpawnsInFlight = 0
    var lastBacklogMs: Int64 = 0

    init(definition: ServiceDefinition, jobMs: Int64, seed: UInt64, noise: Double = 0, rate: @escaping (Int64) -> Double) {
        self.definition = definition
        self.jobMs = jobMs
        self.noise = noise
        self.rate = rate
        self.rng = SeededRandom(seed: seed)
        self.scaler = Scaler(definitions: [definition.service: definition])
    }

    var activeWorkers: Int { workers.filter { !$0.leaving }.count }

    var log: [String] {
        events.map { "\($0.atMs) ms: \($0.directive)" }
    }

    mutating func run(until endMs: Int64) {
        while nowMs < endMs {
            step()
            nowMs += 10
        }
    }

    private mutating func step() {
        // Workers appear, are admitted, finish jobs; drained ones exit.
        for start in starting where start.atMs <= nowMs {
            let n = nextWorker
            nextWorker += 1
            workers.append(Worker(
                id: NodeID(high: n, low: 0), address: .ipv4(10, 0, 0, start.host, port: UInt16(3_000 + n)),
                admittedAtMs: nowMs + admissionMs))
        }
        starting.removeAll { $0.atMs <= nowMs }
        for index in workers.indices {
            if workers[index].status == .joining, workers[index].admittedAtMs <= nowMs { workers[index].status = .standby }
            workers[index].jobs.removeAll { $0 <= nowMs }
        }
        workers.removeAll { $0.leaving && $0.jobs.isEmpty }
        if !workers.contains(where: { $0.status == .primary && !$0.leaving }),
           let next = workers.indices.filter({ workers[$0].status == .standby && !workers[$0].leaving }).min(by: { workers[$0].id < workers[$1].id }) {
            workers[next].status = .primary
        }

        // Jobs arrive: held by the entry nodes when there is no primary yet, refused with no worker at all.
        if nowMs % 1_000 == 0, noise > 0 { factor = 1 + Double.random(in: -noise...noise, using: &rng) }
        arrivals += rate(nowMs) * factor / 100
        let arrived = Int(arrivals)
        arrivals -= Double(arrived)
        if workers.contains(where: { !$0.leaving }) {
            queue += arrived
        } else if nextWorker > 1 {
            lostJobs += arrived
        }

        // The primary dispatches to the least-loaded executor.
        let standbys = workers.indices.filter { workers[$0].status == .standby && !workers[$0].leaving }
        let executors = standbys.isEmpty ? workers.indices.filter { workers[$0].status == .primary && !workers[$0].leaving } : standbys
        while queue > 0, let index = executors.filter({ workers[$0].jobs.count < definition.concurrency })
            .min(by: { (workers[$0].jobs.count, workers[$0].id.high) < (workers[$1].jobs.count, workers[$1].id.high) }) {
            workers[index].jobs.append(nowMs + jobMs)
            queue -= 1
        }
        if queue > 0 { lastBacklogMs = nowMs }

        if nowMs % 100 == 0 { tickScaler() }
    }

    private mutating func tickScaler() {
        var members = workers.map { worker in
            Member(
                id: worker.id, service: definition.service, status: worker.status, priority: 0, epoch: 1,
                workload: Workload(
                    running: UInt32(worker.jobs.count), capacity: UInt32(definition.concurrency),
                    backlog: worker.status == .primary ? UInt32(queue) : 0),
                address: worker.address, lastHeardMs: nowMs, sequence: 1, leaving: worker.leaving)
        }
        for host in agentHosts {
            let hosted = workers.filter { $0.address.hostBytes.last == host }.count + starting.filter { $0.host == host }.count
            members.append(Member(
                id: NodeID(high: 0, low: UInt64(host)), service: .agent, status: host == 1 ? .primary : .standby,
                priority: 0, epoch: 1, workload: Workload(running: UInt32(hosted), capacity: agentCapacity),
                address: agentAddress(host), lastHeardMs: nowMs, sequence: 1))
        }
        for directive in scaler.tick(nowMs: nowMs, members: members) {
            switch directive {
            case .spawn(_, let agent, _):
                events.append(Event(atMs: nowMs, directive: directive))
                starting.append((agent.hostBytes.last!, nowMs + spawnDelayMs))
            case .retire(_, let address, _):
                let index = workers.firstIndex { $0.address == address }!
                events.append(Event(atMs: nowMs, directive: directive, targetStatus: workers[index].status))
                // A draining primary steps down at once; the oldest standby takes over.
                if workers[index].status == .primary { workers[index].status = .standby }
                workers[index].leaving = true
            }
        }
        maxWorkersSeen = max(maxWorkersSeen, activeWorkers)
        maxSpawnsInFlight = max(maxSpawnsInFlight, scaler.spawnsInFlight(for: definition.service))
    }
}
