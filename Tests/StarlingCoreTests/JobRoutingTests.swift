import StarlingCore
import Testing

/// Job engines wired by hand: frames are delivered when a test says so, handlers finish when a
/// test says so, and each process's view of the record is set by the test.
struct JobBench {
    let echo = try! ServiceName("echo")
    var processes: [NodeAddress: JobEngine] = [:]
    /// Frames in flight, in order.
    var wire: [(from: NodeAddress, to: NodeAddress, message: PeerMessage)] = []
    var answers: [ClientID: [ClientResponse]] = [:]
    /// Jobs started per process, in order, with the epoch they run under.
    var started: [NodeAddress: [JobKey]] = [:]
    /// Handler runs over all processes, finished or not.
    var runs = 0
    var nowMs: Int64 = 0

    static func address(_ n: UInt16) -> NodeAddress { .ipv4(127, 0, 0, 1, port: n) }

    /// `leases`: whether primaries lease key shards; without, every job is placed by load.
    init(processes count: Int, slots: Int = 2, leases: Bool = true) {
        var config = JobEngine.Config()
        config.router.leasesShards = leases
        for n in 1...count {
            let address = Self.address(UInt16(n))
            processes[address] = JobEngine(address: address, service: echo, slots: slots, config: config)
        }
    }

    mutating func carry(_ directives: [JobDirective], at process: NodeAddress) {
        for directive in directives {
            switch directive {
            case .answer(let client, let response): answers[client, default: []].append(response)
            case .send(let message, let to): wire.append((process, to, message))
            case .run(let ticket, _):
                started[process, default: []].append(ticket.key)
                runs += 1
            }
        }
    }

    /// Delivers every frame in flight, and those they cause, dropping frames to `dead` processes.
    mutating func deliverAll(dead: Set<NodeAddress> = []) {
        while !wire.isEmpty {
            let (from, to, message) = wire.removeFirst()
            guard processes[to] != nil, !dead.contains(to) else { continue }
            carry(processes[to]!.received(message, from: from, nowMs: nowMs), at: to)
        }
    }

    /// Every process sees `primary` at `epoch`, with `executors` as its service's standbys.
    mutating func makePrimary(
        _ primary: NodeAddress, epoch: UInt64, executors: [NodeAddress], highestEpoch: UInt64? = nil, slots: Int = 2
    ) {
        for address in processes.keys.sorted() {
            let view = JobView(
                primaryEpoch: address == primary ? epoch : nil, highestEpoch: highestEpoch ?? epoch,
                primaries: [echo: .init(address: primary, epoch: epoch)],
                executors: executors.map { .init(address: $0, slots: slots) })
            carry(processes[address]!.follow(view, nowMs: nowMs), at: address)
        }
    }

    mutating func submit(_ key: String, at entry: NodeAddress, client: ClientID = 1, payload: String? = nil) {
        carry(processes[entry]!.submit(
            service: echo, key: try! JobKey(key), payload: Array((payload ?? key).utf8), client: client, nowMs: nowMs), at: entry)
    }

    /// Every job started at `process` finishes, echoing its key.
    mutating func finishAll(at process: NodeAddress) {
        while let key = started[process]?.first {
            started[process]!.removeFirst()
            carry(processes[process]!.finished(key, outcome: .succeeded(Array(key.value.utf8)), nowMs: nowMs), at: process)
        }
    }

    mutating func tickAll() {
        for address in processes.keys.sorted() { carry(processes[address]!.tick(nowMs: nowMs), at: address) }
    }

    /// The messages of the `BAD_REQUEST` errors `client` got.
    func badRequests(_ client: ClientID) -> [String] {
        (answers[client] ?? []).compactMap { if case .error(_, .badRequest, let message) = $0 { message } else { nil } }
    }

    func okKeys(_ client: ClientID) -> [String] {
        (answers[client] ?? []).compactMap { if case .ok(let key, _) = $0 { key.value } else { nil } }
    }
}

@Suite struct JobRoutingTests {
    let p1 = JobBench.address(1), p2 = JobBench.address(2), p3 = JobBench.address(3)

    @Test func theLeastLoadedExecutorGetsEachJob() {
        var bench = JobBench(processes: 3, leases: false)
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

    @Test func aJobRunsAtItsEntryNodeWhileThatIsNearlyAsFreeAsTheLeastLoaded() {
        var bench = JobBench(processes: 3, slots: 16, leases: false)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3], slots: 16)
        // Even demand, as the two entry nodes' clients submit side by side.
        for n in 0..<4 {
            bench.submit("a\(n)", at: p2)
            bench.submit("b\(n)", at: p3)
        }
        bench.deliverAll()
        #expect(bench.started[p2]?.map(\.value) == ["a0", "a1", "a2", "a3"], "\(bench.started)")
        #expect(bench.started[p3]?.map(\.value) == ["b0", "b1", "b2", "b3"], "\(bench.started)")

        // Uneven demand: the entry node keeps its jobs only while within an eighth of its slots
        // (two jobs of 16) of the least-loaded executor; the rest go there.
        var uneven = JobBench(processes: 3, slots: 16, leases: false)
        uneven.makePrimary(p1, epoch: 1, executors: [p2, p3], slots: 16)
        for n in 0..<8 { uneven.submit("c\(n)", at: p3) }
        uneven.deliverAll()
        #expect(uneven.started[p3]?.count == 5 && uneven.started[p2]?.count == 3, "\(uneven.started)")
        for process in [p2, p3] { uneven.finishAll(at: process) }
        uneven.deliverAll()
        #expect(Set(uneven.okKeys(1)) == Set((0..<8).map { "c\($0)" }))
    }

    @Test func jobsBeyondSlotsAndPrefetchWaitInTheQueueAsBacklog() {
        var bench = JobBench(processes: 2, leases: false)
        bench.makePrimary(p1, epoch: 1, executors: [p2])
        for n in 0..<10 { bench.submit("j\(n)", at: p1) }
        bench.deliverAll()
        #expect(bench.started[p2]?.count == 2, "two slots")
        #expect(bench.processes[p2]!.holdings.waiting == 2, "prefetch of one per slot")
        #expect(bench.processes[p1]!.holdings.queued == 6)
        while bench.okKeys(1).count < 10 {
            bench.finishAll(at: p2)
            bench.deliverAll()
        }
        #expect(bench.okKeys(1) == (0..<10).map { "j\($0)" }, "FIFO")
        #expect(bench.processes[p1]!.holdings.queued == 0)
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

    @Test func aKeyAlreadyUsedWithAnotherPayloadIsRefusedWhereverItIsKnown() {
        let conflict = ["key already used with a different payload"]
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("k", at: p2, client: 1, payload: "a")
        bench.submit("k", at: p2, client: 2, payload: "b")
        #expect(bench.badRequests(2) == conflict, "pending at the same entry node")
        bench.deliverAll()
        bench.submit("k", at: p1, client: 3, payload: "b")
        bench.deliverAll()
        #expect(bench.badRequests(3) == conflict, "queued or running at the primary")
        bench.finishAll(at: p3)
        bench.deliverAll()
        #expect(bench.okKeys(1) == ["k"])
        bench.submit("k", at: p2, client: 4, payload: "b")
        bench.submit("k", at: p1, client: 5, payload: "b")
        bench.submit("k", at: p2, client: 6, payload: "a")
        bench.deliverAll()
        #expect(bench.badRequests(4) == conflict && bench.badRequests(5) == conflict, "in the recent outcomes")
        #expect(bench.okKeys(6) == ["k"], "the same payload still gets its answer")
        // The primary dies; the new one and entry node p2 never saw "k" (p1 was its entry), but
        // the executor that ran it did.
        bench.processes[p1] = nil
        bench.makePrimary(p2, epoch: 2, executors: [p3])
        bench.submit("k", at: p2, client: 7, payload: "c")
        bench.deliverAll(dead: [p1])
        #expect(bench.badRequests(7) == conflict, "refused by the executor, told through the primary")
        #expect(bench.started[p3]?.isEmpty ?? true, "ran once")
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
        bench.processes[p2] = nil
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        var rounds = 0
        while bench.okKeys(1).count < 4 && rounds < 10 {
            bench.finishAll(at: p3)
            bench.deliverAll(dead: [p2])
            rounds += 1
        }
        #expect(bench.okKeys(1).sorted() == ["j0", "j1", "j2", "j3"])
    }

    @Test func aStaleEpochIsDeclinedAndTheJobGoesElsewhere() {
        var bench = JobBench(processes: 3, leases: false)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        let seenNewer = JobView(primaryEpoch: nil, highestEpoch: 5, primaries: [bench.echo: .init(address: p1, epoch: 1)], executors: [])
        bench.carry(bench.processes[p2]!.follow(seenNewer, nowMs: 0), at: p2)
        bench.submit("a", at: p1)
        bench.submit("b", at: p1)
        bench.deliverAll()
        #expect(bench.started[p2] == nil, "p2 has seen epoch 5 and runs nothing of epoch 1")
        #expect(bench.started[p3]?.count == 2)
    }

    /// The link from the executor to the entry node breaks with the outcome on it, and the entry
    /// node asks the primary again: answered from its recent outcomes, or, when the executor's
    /// outcome reaches the primary only after the asking (late on a lossy link), relayed by the
    /// primary as it comes rather than left to the executor, whose message was the one lost.
    @Test(arguments: [false, true])
    func anOutcomeLostWithTheExecutorsLinkIsAskedForAgainAtOnce(reachesThePrimaryLate: Bool) {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("k", at: p2)
        bench.deliverAll()
        bench.finishAll(at: p3)
        bench.wire.removeAll { $0.to == p2 }
        let late = reachesThePrimaryLate ? bench.wire.filter { $0.to == p1 } : []
        if reachesThePrimaryLate { bench.wire.removeAll { $0.to == p1 } }
        bench.deliverAll()
        #expect(bench.answers.isEmpty)
        bench.carry(bench.processes[p2]!.linkLost(to: p3, nowMs: bench.nowMs), at: p2)
        bench.deliverAll()
        bench.wire += late
        bench.deliverAll()
        #expect(bench.okKeys(1) == ["k"], "answered by the primary: \(bench.answers)")
        #expect(bench.runs == 1, "ran once")
        #expect(bench.processes.values.allSatisfy { $0.holdings.pending == 0 && $0.holdings.routed == 0 })
    }

    /// The stall issue 9 names: a frame the shell dropped at its buffer limit on a live link used
    /// to leave its job unanswered for good. Now each dropped frame goes again at the next tick.
    @Test(arguments: ["forward", "dispatch", "result to the primary", "result to the entry"])
    func aFrameTheShellCouldNotSendGoesAgainAtTheNextTick(dropped kind: String) {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("k", at: p2)
        let matches: (PeerMessage, NodeAddress) -> Bool = { message, to in
            switch (kind, message) {
            case ("forward", .forward), ("dispatch", .dispatch): true
            case ("result to the primary", .result): to == p1
            case ("result to the entry", .result): to == p2
            default: false
            }
        }
        var droppedOne = false
        for _ in 0..<6 {
            // Frame by frame: the first that matches is dropped by its sender's shell.
            while !bench.wire.isEmpty {
                let frame = bench.wire.removeFirst()
                if !droppedOne && matches(frame.message, frame.to) {
                    bench.processes[frame.from]!.frameDropped(frame.message, to: frame.to)
                    droppedOne = true
                } else {
                    bench.carry(bench.processes[frame.to]!.received(frame.message, from: frame.from, nowMs: bench.nowMs), at: frame.to)
                }
            }
            bench.finishAll(at: p3)
            bench.tickAll()
        }
        #expect(droppedOne, "the scenario dropped its frame")
        #expect(bench.okKeys(1) == ["k"], "answered once after the drop: \(bench.answers)")
        #expect(bench.processes.values.allSatisfy { $0.holdings.pending == 0 && $0.holdings.resend == 0 })
    }

    /// A frame lost with nobody told (a connection that died half-open): the job is answered once
    /// its forward or dispatch is overdue (`JobOverdue`), and it runs once. Nothing goes again
    /// before the bound derived from the job timeout.
    /// The outcome goes from the executor straight to the entry node: three hops, not four, and
    /// a large result never crosses the primary on its way out (docs/HANDBOOK.md, "The job path").
    @Test func theOutcomeGoesStraightFromTheExecutorToTheEntryNode() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("k", at: p2)
        bench.deliverAll()
        bench.finishAll(at: p3)
        let results = bench.wire.filter { if case .result = $0.message { true } else { false } }
        #expect(results.map(\.from) == [p3, p3])
        #expect(Set(results.map(\.to)) == [p1, p2])
        var later: [PeerMessage] = []
        while !bench.wire.isEmpty {
            let frame = bench.wire.removeFirst()
            later.append(frame.message)
            bench.carry(bench.processes[frame.to]!.received(frame.message, from: frame.from, nowMs: bench.nowMs), at: frame.to)
        }
        #expect(bench.okKeys(1) == ["k"])
        // The primary took note and relayed nothing: the entry node it would relay to was told.
        #expect(later.count == 2, "\(later)")
        #expect(bench.processes.values.allSatisfy { $0.holdings.pending == 0 && $0.holdings.routed == 0 })
    }

    /// The stall issue 9 names: a frame the shell dropped at its buffer limit on a live link used
    /// to leave its job unanswered for good. Now each dropped frame goes again at the next tick.
    @Test(arguments: ["forward", "dispatch", "result to the primary", "result to the entry"])
    func aFrameLostSilentlyIsSentAgainOnceOverdue(lost kind: String) {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("k", at: p2)
        let matches: (PeerMessage, NodeAddress) -> Bool = { message, to in
            switch (kind, message) {
            case ("forward", .forward), ("dispatch", .dispatch): true
            case ("result to the primary", .result): to == p1
            case ("result to the entry", .result): to == p2
            default: false
            }
        }
        var lostOne = false
        func step(_ bench: inout JobBench) {
            while !bench.wire.isEmpty {
                let frame = bench.wire.removeFirst()
                if !lostOne && matches(frame.message, frame.to) {
                    lostOne = true
                } else {
                    bench.carry(bench.processes[frame.to]!.received(frame.message, from: frame.from, nowMs: bench.nowMs), at: frame.to)
                }
            }
            bench.finishAll(at: p3)
            bench.tickAll()
        }
        step(&bench)
        step(&bench)
        #expect(lostOne, "the scenario lost its frame")
        let timeout = ServiceDefinition.defaultTimeoutMs, overdue = JobOverdue()
        // Just before the earliest bound nothing goes again. The entry node hears the outcome
        // from the executor itself, so losing the primary's copy delays only the router's release.
        bench.nowMs = overdue.dispatchMs(jobTimeoutMs: timeout, round: 0) - 1
        step(&bench)
        #expect(bench.wire.isEmpty)
        #expect(kind == "result to the primary" ? bench.okKeys(1) == ["k"] : bench.answers.isEmpty, "\(bench.answers)")
        for ms in stride(from: bench.nowMs, through: overdue.forwardMs(jobTimeoutMs: timeout, round: 0) + 1_000, by: 100) {
            bench.nowMs = ms
            step(&bench)
        }
        #expect(bench.okKeys(1) == ["k"], "answered once: \(bench.answers)")
        #expect(bench.runs == 1, "ran once")
        #expect(bench.processes.values.allSatisfy { $0.holdings.pending == 0 && $0.holdings.routed == 0 })
    }

    @Test func aForwardToAProcessThatIsNotPrimaryWaitsForTheNextPrimary() {
        var bench = JobBench(processes: 3)
        // p2 believes p1 is primary at epoch 1, but p1 has stepped down: the forward is ignored.
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        let steppedDown = JobView(primaryEpoch: nil, highestEpoch: 1, primaries: [bench.echo: nil], executors: [])
        bench.carry(bench.processes[p1]!.follow(steppedDown, nowMs: 0), at: p1)
        bench.submit("k", at: p2)
        bench.deliverAll()
        #expect(bench.answers.isEmpty, "no refusal: the job waits at its entry node")
        // p1 is primary again at epoch 2: a new epoch is a new primary to the entry node.
        bench.makePrimary(p1, epoch: 2, executors: [p3])
        bench.deliverAll()
        bench.finishAll(at: p3)
        bench.deliverAll()
        #expect(bench.okKeys(1) == ["k"])
    }

    /// A standby that has seen a newer epoch declines every dispatch of this one: it stays out of
    /// the primary's executors until the primary's next epoch. Before, when every standby had
    /// declined, each change of the record (every few milliseconds in simulation seed 9952)
    /// brought them back and sent them the queue again, to be declined again, until the primary
    /// learnt the newer epoch and stepped down.
    @Test func standbysFencedByANewerEpochAreNotSentTheQueueAgainAtEachChangeOfTheRecord() {
        var bench = JobBench(processes: 3, slots: 1)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3], slots: 1)
        let newer = JobView(primaryEpoch: nil, highestEpoch: 2, primaries: [bench.echo: .init(address: p1, epoch: 1)], executors: [])
        for standby in [p2, p3] { bench.carry(bench.processes[standby]!.follow(newer, nowMs: 0), at: standby) }
        for n in 0..<8 { bench.submit("k\(n)", at: p1) }
        bench.deliverAll()
        // The record changes again and again (the standbys' slots move): nothing more is sent.
        for slots in [2, 1, 3] {
            let view = JobView(primaryEpoch: 1, highestEpoch: 1, primaries: [bench.echo: .init(address: p1, epoch: 1)],
                               executors: [.init(address: p2, slots: slots), .init(address: p3, slots: 1)])
            bench.carry(bench.processes[p1]!.follow(view, nowMs: bench.nowMs), at: p1)
            let dispatches = bench.wire.filter { if case .dispatch = $0.message { true } else { false } }.count
            #expect(dispatches == 0, "the fenced standbys were sent the queue again at a change of the record")
            bench.deliverAll()
        }
        let ranUnderEpoch1 = bench.runs
        #expect(ranUnderEpoch1 == 0)
        // The primary's next epoch, above their fence: every job runs and is answered.
        bench.makePrimary(p1, epoch: 3, executors: [p2, p3], slots: 1)
        bench.deliverAll()
        for _ in 0..<8 {
            for standby in [p2, p3] { bench.finishAll(at: standby) }
            bench.deliverAll()
        }
        #expect(bench.okKeys(1).sorted() == (0..<8).map { "k\($0)" }, "\(bench.answers)")
    }

    @Test func aJobWaitingForASlotDoesNotRunOnceTheFenceRoseAboveIt() {
        var bench = JobBench(processes: 3, slots: 1)
        bench.makePrimary(p1, epoch: 1, executors: [p3])
        bench.submit("a", at: p1)
        bench.submit("b", at: p1)
        bench.deliverAll()
        #expect(bench.started[p3] == [try! JobKey("a")] && bench.processes[p3]!.holdings.waiting == 1)
        // p3 learns of epoch 2 (p2's) before "a" finishes; nobody dispatched "b" at epoch 2.
        let newer = JobView(primaryEpoch: nil, highestEpoch: 2, primaries: [bench.echo: .init(address: p1, epoch: 1)], executors: [])
        bench.carry(bench.processes[p3]!.follow(newer, nowMs: 0), at: p3)
        bench.finishAll(at: p3)
        #expect(bench.started[p3]?.isEmpty ?? true, "b is declined, not run under epoch 1")
        #expect(bench.wire.contains { if case .declined(1, _, let key, _) = $0.message { key.value == "b" } else { false } })
    }

    @Test func unknownServicesBoundsAndMissingPrimariesGetErrors() {
        var entry = EntryJobs(address: p1, config: { var c = EntryJobs.Config(); c.maxPending = 1; c.unavailableAfterMs = 1_000; return c }())
        let echo = try! ServiceName("echo")
        let recent = RecentOutcomes(capacity: 1, ttlMs: 1_000)
        let noService = entry.submit(service: try! ServiceName("resize"), key: try! JobKey("k"), payload: [], client: 1, recent: recent, nowMs: 0)
        #expect(noService == [.answer(1, .error(key: try! JobKey("k"), code: .noService, message: "no worker of service resize is known"))])
        _ = entry.update(primaries: [echo: nil], nowMs: 0)
        #expect(entry.submit(service: echo, key: try! JobKey("a"), payload: [], client: 1, recent: recent, nowMs: 0).isEmpty, "waits for a primary")
        let busy = entry.submit(service: echo, key: try! JobKey("b"), payload: [], client: 1, recent: recent, nowMs: 0)
        guard case .answer(_, .error(_, .busy, _)) = busy.first else { Issue.record("\(busy)"); return }
        #expect(entry.tick(nowMs: 999).isEmpty)
        let unavailable = entry.tick(nowMs: 1_000)
        guard case .answer(1, .error(_, .unavailable, _)) = unavailable.first else { Issue.record("\(unavailable)"); return }
        #expect(entry.pendingCount == 0)

        var router = JobRouter(service: echo, config: { var c = JobRouter.Config(); c.maxQueued = 1; return c }())
        _ = router.becamePrimary(epoch: 1, nowMs: 0)
        let ticket = { (key: String) in JobTicket(service: echo, key: try! JobKey(key), entry: p2, payload: []) }
        var routerRecent = recent
        #expect(router.received(.forward(ticket("a")), from: p2, recent: &routerRecent, nowMs: 0).isEmpty, "queued: no executor yet")
        let full = router.received(.forward(ticket("b")), from: p2, recent: &routerRecent, nowMs: 0)
        guard case .send(.refused(_, _, .busy, _), to: p2) = full.first else { Issue.record("\(full)"); return }
    }
}

@Suite struct RecentOutcomesTests {
    let id = { (n: Int) in JobID(service: try! ServiceName("echo"), key: try! JobKey("k\(n)")) }

    @Test func boundedByCountBytesAndTime() {
        var recent = RecentOutcomes(capacity: 3, ttlMs: 1_000, maxBytes: 100)
        let known = { (recent: RecentOutcomes, n: Int) in recent.recall(id(n), payload: []) != nil }
        for n in 0..<4 { recent.remember(.succeeded([UInt8](repeating: 1, count: 10)), for: id(n), payload: [], nowMs: 0) }
        #expect(recent.count == 3 && !known(recent, 0), "the oldest goes past the count")
        recent.remember(.succeeded([UInt8](repeating: 1, count: 90)), for: id(9), payload: [], nowMs: 0)
        #expect(known(recent, 9) && !known(recent, 1) && recent.count == 2, "old ones go to make room for the bytes")
        recent.remember(.succeeded([UInt8](repeating: 1, count: 101)), for: id(10), payload: [], nowMs: 0)
        #expect(!known(recent, 10) && known(recent, 9), "a result over the byte bound is not kept")
        recent.expire(nowMs: 1_000)
        #expect(recent.count == 0)
    }

    @Test func aKeyIsRecalledOnlyWithTheSamePayload() {
        var recent = RecentOutcomes(capacity: 3, ttlMs: 1_000)
        recent.remember(.succeeded([1]), for: id(0), payload: [7, 7], nowMs: 0)
        #expect(recent.recall(id(0), payload: [7, 7]) == .answered(.succeeded([1])))
        #expect(recent.recall(id(0), payload: [7, 8]) == .otherPayload)
        #expect(recent.recall(id(0), payload: []) == .otherPayload)
        #expect(recent.recall(id(1), payload: [7, 7]) == nil)
    }

    @Test func theFirstOutcomeOfAKeyStandsAndCountsOnce() {
        var recent = RecentOutcomes(capacity: 3, ttlMs: 1_000, maxBytes: 100)
        recent.remember(.succeeded([UInt8](repeating: 1, count: 60)), for: id(0), payload: [], nowMs: 0)
        recent.remember(.failed("again"), for: id(0), payload: [9], nowMs: 0)
        #expect(recent.recall(id(0), payload: []) == .answered(.succeeded([UInt8](repeating: 1, count: 60))))
        #expect(recent.count == 1)
        // Had the second counted, 60 + 5 + 40 bytes would be over the bound and push the first out.
        recent.remember(.succeeded([UInt8](repeating: 2, count: 40)), for: id(1), payload: [], nowMs: 0)
        #expect(recent.count == 2 && recent.recall(id(0), payload: []) != nil)
    }
}
