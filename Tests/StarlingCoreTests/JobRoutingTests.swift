import StarlingCore
import Testing

/// Entry nodes, primaries and executors wired by hand: frames are delivered when a test says so,
/// handlers finish when a test says so. Each process has all three parts, as a worker does.
private struct JobBench {
    struct Process {
        var entry: EntryJobs
        var router: JobRouter
        var runner: JobRunner
    }

    let echo = try! ServiceName("echo")
    var processes: [NodeAddress: Process] = [:]
    /// Frames in flight, in order.
    var wire: [(from: NodeAddress, to: NodeAddress, message: PeerMessage)] = []
    var answers: [ClientID: [ClientResponse]] = [:]
    /// Jobs started per process, in order.
    var started: [NodeAddress: [JobKey]] = [:]
    var nowMs: Int64 = 0

    static func address(_ n: UInt16) -> NodeAddress { .ipv4(127, 0, 0, 1, port: n) }

    init(processes count: Int, slots: Int = 2) {
        for n in 1...count {
            let address = Self.address(UInt16(n))
            processes[address] = Process(
                entry: EntryJobs(address: address), router: JobRouter(service: echo),
                runner: JobRunner(service: echo, config: .init(slots: slots)))
        }
    }

    mutating func carry(_ directives: [JobDirective], at process: NodeAddress) {
        for directive in directives {
            switch directive {
            case .answer(let client, let response): answers[client, default: []].append(response)
            case .send(let message, let to): wire.append((process, to, message))
            case .run(let ticket): started[process, default: []].append(ticket.key)
            }
        }
    }

    /// Delivers every frame in flight, and those they cause, dropping frames to `dead` processes.
    mutating func deliverAll(dead: Set<NodeAddress> = []) {
        while !wire.isEmpty {
            let (from, to, message) = wire.removeFirst()
            guard processes[to] != nil, !dead.contains(to) else { continue }
            switch message {
            case .forward, .declined, .running:
                carry(processes[to]!.router.received(message, from: from, nowMs: nowMs), at: to)
            case .dispatch:
                carry(processes[to]!.runner.received(message, from: from, nowMs: nowMs), at: to)
            case .result:
                // For the entry if it is its job, and for the router if it dispatched it.
                carry(processes[to]!.router.received(message, from: from, nowMs: nowMs), at: to)
                carry(processes[to]!.entry.received(message, nowMs: nowMs), at: to)
            case .refused:
                carry(processes[to]!.entry.received(message, nowMs: nowMs), at: to)
            case .hello, .spawn, .retire, .spawnRefused:
                break
            }
        }
    }

    mutating func makePrimary(_ primary: NodeAddress, epoch: UInt64, executors: [NodeAddress]) {
        for address in processes.keys {
            carry(processes[address]!.entry.update(primaries: [echo: primary], nowMs: nowMs), at: address)
        }
        carry(processes[primary]!.router.becamePrimary(epoch: epoch), at: primary)
        carry(processes[primary]!.router.update(executors: executors.map { .init(address: $0, slots: 2) }), at: primary)
        for address in processes.keys where address != primary {
            processes[address]!.router.steppedDown()
            carry(processes[address]!.runner.newPrimary(at: primary, epoch: epoch), at: address)
        }
    }

    mutating func submit(_ key: String, at entry: NodeAddress, client: ClientID = 1) {
        carry(processes[entry]!.entry.submit(
            service: echo, key: try! JobKey(key), payload: Array(key.utf8), client: client, nowMs: nowMs), at: entry)
    }

    /// Every job started at `process` finishes, echoing its key.
    mutating func finishAll(at process: NodeAddress) {
        while let key = started[process]?.first {
            started[process]!.removeFirst()
            carry(processes[process]!.runner.finished(key, outcome: .succeeded(Array(key.value.utf8)), nowMs: nowMs), at: process)
        }
    }

    func okKeys(_ client: ClientID) -> [String] {
        (answers[client] ?? []).compactMap { if case .ok(let key, _) = $0 { key.value } else { nil } }
    }
}

@Suite struct JobRoutingTests {
    let p1 = JobBench.address(1), p2 = JobBench.address(2), p3 = JobBench.address(3)

    @Test func theLeastLoadedExecutorGetsEachJob() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        for n in 0..<4 { bench.submit("j\(n)", at: p1) }
        bench.deliverAll()
        #expect(bench.started[p2]?.count == 2 && bench.started[p3]?.count == 2, "\(bench.started)")
        bench.finishAll(at: p2)
        bench.deliverAll()
        #expect(bench.okKeys(1).count == 2)
        for n in 4..<6 { bench.submit("j\(n)", at: p3) }
        bench.deliverAll()
        #expect(bench.started[p2]?.count == 2, "the idle executor takes both new jobs: \(bench.started)")
    }

    @Test func jobsBeyondSlotsAndPrefetchWaitInTheQueueAsBacklog() {
        var bench = JobBench(processes: 2)
        bench.makePrimary(p1, epoch: 1, executors: [p2])
        for n in 0..<10 { bench.submit("j\(n)", at: p1) }
        bench.deliverAll()
        #expect(bench.started[p2]?.count == 2, "two slots")
        #expect(bench.processes[p2]!.runner.waitingCount == 2, "prefetch of one per slot")
        #expect(bench.processes[p1]!.router.backlog == 6)
        while bench.okKeys(1).count < 10 {
            bench.finishAll(at: p2)
            bench.deliverAll()
        }
        #expect(bench.okKeys(1) == (0..<10).map { "j\($0)" }, "FIFO")
        #expect(bench.processes[p1]!.router.backlog == 0)
    }

    @Test func aKeyInFlightAttachesAndARecentKeyIsAnsweredWithoutRunningAgain() {
        var bench = JobBench(processes: 2)
        bench.makePrimary(p1, epoch: 1, executors: [p2])
        bench.submit("same", at: p1, client: 1)
        bench.submit("same", at: p2, client: 2)
        bench.deliverAll()
        #expect(bench.started[p2] == [try! JobKey("same")])
        bench.finishAll(at: p2)
        bench.deliverAll()
        #expect(bench.okKeys(1) == ["same"] && bench.okKeys(2) == ["same"])
        bench.submit("same", at: p2, client: 3)
        bench.submit("same", at: p1, client: 4)
        bench.deliverAll()
        #expect(bench.okKeys(3) == ["same"] && bench.okKeys(4) == ["same"])
        #expect(bench.started[p2]?.isEmpty ?? true, "ran once")
    }

    @Test func whenThePrimaryDiesEntriesForwardAgainAndTheNewPrimaryAdoptsWhatRuns() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        for n in 0..<8 { bench.submit("j\(n)", at: p2) }
        bench.deliverAll()
        let runningOnP3 = bench.started[p3] ?? []
        #expect(!runningOnP3.isEmpty)
        // p1 dies. p2 becomes primary at epoch 2 with p3 as its only executor.
        bench.processes[p1] = nil
        bench.makePrimary(p2, epoch: 2, executors: [p3])
        bench.deliverAll(dead: [p1])
        #expect(bench.started[p3] == runningOnP3, "nothing running on p3 started twice")
        var rounds = 0
        while bench.okKeys(1).count < 8 && rounds < 20 {
            bench.finishAll(at: p3)
            bench.finishAll(at: p2)
            bench.deliverAll(dead: [p1])
            rounds += 1
        }
        #expect(Set(bench.okKeys(1)) == Set((0..<8).map { "j\($0)" }))
        #expect(bench.okKeys(1).count == 8, "each answered once")
    }

    @Test func jobsOnADeadExecutorAreDispatchedAgain() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        for n in 0..<4 { bench.submit("j\(n)", at: p1) }
        bench.deliverAll()
        bench.carry(bench.processes[p1]!.router.update(executors: [.init(address: p3, slots: 2)]), at: p1)
        bench.processes[p2] = nil
        var rounds = 0
        while bench.okKeys(1).count < 4 && rounds < 10 {
            bench.finishAll(at: p3)
            bench.deliverAll(dead: [p2])
            rounds += 1
        }
        #expect(bench.okKeys(1).sorted() == ["j0", "j1", "j2", "j3"])
    }

    @Test func aStaleEpochIsDeclinedAndTheJobGoesElsewhere() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        bench.processes[p2]!.runner.observe(epoch: 5)
        bench.submit("a", at: p1)
        bench.submit("b", at: p1)
        bench.deliverAll()
        #expect(bench.started[p2] == nil, "p2 has seen epoch 5 and runs nothing of epoch 1")
        #expect(bench.started[p3]?.count == 2)
    }

    @Test func unknownServicesBoundsAndMissingPrimariesGetErrors() {
        var entry = EntryJobs(address: p1, config: { var c = EntryJobs.Config(); c.maxPending = 1; c.unavailableAfterMs = 1_000; return c }())
        let echo = try! ServiceName("echo")
        let noService = entry.submit(service: try! ServiceName("resize"), key: try! JobKey("k"), payload: [], client: 1, nowMs: 0)
        #expect(noService == [.answer(1, .error(key: try! JobKey("k"), code: .noService, message: "no worker of service resize is known"))])
        _ = entry.update(primaries: [echo: nil], nowMs: 0)
        #expect(entry.submit(service: echo, key: try! JobKey("a"), payload: [], client: 1, nowMs: 0).isEmpty, "waits for a primary")
        let busy = entry.submit(service: echo, key: try! JobKey("b"), payload: [], client: 1, nowMs: 0)
        guard case .answer(_, .error(_, .busy, _)) = busy.first else { Issue.record("\(busy)"); return }
        #expect(entry.tick(nowMs: 999).isEmpty)
        let unavailable = entry.tick(nowMs: 1_000)
        guard case .answer(1, .error(_, .unavailable, _)) = unavailable.first else { Issue.record("\(unavailable)"); return }
        #expect(entry.pendingCount == 0)

        var router = JobRouter(service: echo, config: { var c = JobRouter.Config(); c.maxQueued = 1; return c }())
        _ = router.becamePrimary(epoch: 1)
        let ticket = { (key: String) in JobTicket(service: echo, key: try! JobKey(key), entry: p2, payload: []) }
        #expect(router.received(.forward(ticket("a")), from: p2, nowMs: 0).isEmpty, "queued: no executor yet")
        let full = router.received(.forward(ticket("b")), from: p2, nowMs: 0)
        guard case .send(.refused(_, _, .busy, _), to: p2) = full.first else { Issue.record("\(full)"); return }
    }
}

@Suite struct RecentOutcomesTests {
    let id = { (n: Int) in JobID(service: try! ServiceName("echo"), key: try! JobKey("k\(n)")) }

    @Test func boundedByCountBytesAndTime() {
        var recent = RecentOutcomes(capacity: 3, ttlMs: 1_000, maxBytes: 100)
        for n in 0..<4 { recent.remember(.succeeded([UInt8](repeating: 1, count: 10)), for: id(n), nowMs: 0) }
        #expect(recent.count == 3 && recent[id(0)] == nil, "the oldest goes past the count")
        recent.remember(.succeeded([UInt8](repeating: 1, count: 90)), for: id(9), nowMs: 0)
        #expect(recent[id(9)] != nil && recent[id(1)] == nil && recent.count == 2, "old ones go to make room for the bytes")
        recent.remember(.succeeded([UInt8](repeating: 1, count: 101)), for: id(10), nowMs: 0)
        #expect(recent[id(10)] == nil && recent[id(9)] != nil, "a result over the byte bound is not kept")
        recent.expire(nowMs: 1_000)
        #expect(recent.count == 0)
    }
}
