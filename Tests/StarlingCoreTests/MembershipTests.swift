import StarlingCore
import Testing
import StarlingTestSupport

/// A few processes wired together by hand: every heartbeat is delivered at once, in order,
/// unless a test drops or holds it. Time moves only when a test says so.
private struct LocalCluster {
    var nodes: [Membership] = []
    var nowMs: Int64 = 0
    var log: [String] = []
    /// Indices whose traffic (both ways) is dropped, to model a pause or a crash.
    var silenced: Set<Int> = []
    /// Datagrams sent per process (one per target of each heartbeat).
    var sent: [Int: Int] = [:]
    /// One-way cuts: datagrams from `from` to `to` are dropped.
    var cut: Set<Cut> = []
    /// Datagrams this says to drop: from, to, and the heartbeat whose receipt made the sender
    /// send it (nil: its tick).
    var drop: ((_ from: Int, _ to: Int, _ trigger: Heartbeat?) -> Bool)?
    /// Random loss: each datagram is dropped with this probability, drawn from `loss`.
    var lossRate = 0.0
    var loss = SeededRandom(seed: 99)
    struct Cut: Hashable {
        var from: Int
        var to: Int
    }

    @discardableResult
    mutating func add(
        _ service: String, priority: Int32 = 0, seeds: [Int] = [0], configure: (inout MembershipConfig) -> Void = { _ in }
    ) -> Int {
        let index = nodes.count
        var rng = SeededRandom(seed: UInt64(index + 1))
        var config = MembershipConfig(
            service: try! ServiceName(service), priority: priority,
            address: .ipv4(127, 0, 0, 1, port: UInt16(9_000 + index)),
            seeds: seeds.filter { $0 != index }.map { .ipv4(127, 0, 0, 1, port: UInt16(9_000 + $0)) })
        configure(&config)
        nodes.append(Membership(config: config, id: NodeID(admittedAtUnixMs: 1_000 + UInt64(index), using: &rng)))
        deliver(nodes[index].start(nowMs: nowMs), from: index)
        return index
    }

    mutating func deliver(_ directives: [MembershipDirective], from sender: Int) {
        var queue: [(Int, MembershipDirective, Heartbeat?)] = directives.map { (sender, $0, nil) }
        while !queue.isEmpty {
            let (from, directive, trigger) = queue.removeFirst()
            switch directive {
            case .send(let heartbeat, let targets):
                guard !silenced.contains(from) else { continue }
                sent[from, default: 0] += targets.count
                for target in targets {
                    guard let to = nodes.firstIndex(where: { $0.config.address == target }), !silenced.contains(to),
                          !cut.contains(Cut(from: from, to: to)) else { continue }
                    if let drop, drop(from, to, trigger) { continue }
                    if lossRate > 0 && Double.random(in: 0..<1, using: &loss) < lossRate { continue }
                    queue += nodes[to].receive(heartbeat, nowMs: nowMs).map { (to, $0, heartbeat) }
                }
            case .statusChanged(let old, let new, let epoch, let reason):
                log.append("\(from): \(old) -> \(new) @\(epoch) (\(reason))")
            default:
                break
            }
        }
    }

    /// Advances time interval by interval, ticking every process, and checks `invariant` after each step.
    mutating func run(forMs durationMs: Int64, invariant: (LocalCluster) -> Void = { _ in }) {
        let end = nowMs + durationMs
        while nowMs < end {
            nowMs += 100
            for index in nodes.indices where !silenced.contains(index) {
                deliver(nodes[index].tick(nowMs: nowMs), from: index)
                invariant(self)
            }
        }
    }

    /// Three echo processes joined through the first, a second after: node 0 is the primary.
    static func threeEchoSettled() -> LocalCluster {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.add("echo")
        cluster.run(forMs: 1_000)
        return cluster
    }

    /// Silences `index` (a crash) and runs for `durationMs`: how long after the crash every
    /// running record had dropped it for good, if they did.
    mutating func crashAndTimeEveryRecordsDrop(_ index: Int, forMs durationMs: Int64) -> Int64? {
        let member = nodes[index].id
        let crashedAt = nowMs
        silenced = [index]
        var droppedAt: Int64?
        run(forMs: durationMs) { cluster in
            let holders = cluster.nodes.indices.filter { !cluster.silenced.contains($0) && cluster.nodes[$0].members[member] != nil }
            if !holders.isEmpty {
                droppedAt = nil
            } else if droppedAt == nil {
                droppedAt = cluster.nowMs
            }
        }
        return droppedAt.map { $0 - crashedAt }
    }

    func primaries(of service: String) -> [Int] {
        nodes.indices.filter { nodes[$0].config.service.value == service && nodes[$0].status == .primary && !silenced.contains($0) }
    }
}

@Suite struct MembershipTests {
    /// Issue 13: a standby's steady-state traffic does not grow with the cluster. With 10 and with
    /// 200 members of three services, once settled, every standby sends the same few datagrams an
    /// interval (to its service's hub and deputy), and the average over all members stays about 3
    /// (docs/HANDBOOK.md, "hub").
    @Test func aStandbysDatagramsPerIntervalDoNotGrowWithTheCluster() {
        func settled(_ count: Int) -> (standbyMost: Double, average: Double, records: Set<Int>) {
            var cluster = LocalCluster()
            cluster.add("echo", seeds: [])
            cluster.run(forMs: 500)
            let services = ["echo", "resize", "sha256"]
            for index in 1..<count { cluster.add(services[index % services.count]) }
            cluster.run(forMs: 3_000)
            cluster.sent = [:]
            cluster.run(forMs: 1_000)
            let standbys = cluster.nodes.indices.filter { index in
                let node = cluster.nodes[index]
                // Neither hub nor deputy: not among the two highest-ranked of its service.
                let ahead = cluster.nodes.filter { $0.config.service == node.config.service && $0.id < node.id }.count
                return node.status == .standby && ahead >= 2
            }
            let standbyMost = standbys.map { Double(cluster.sent[$0, default: 0]) / 10 }.max() ?? 0
            let average = Double(cluster.sent.values.reduce(0, +)) / Double(count) / 10
            return (standbyMost, average, Set(cluster.nodes.map(\.members.count)))
        }
        let small = settled(10)
        let large = settled(200)
        #expect(small.records == [9] && large.records == [199], "every record holds everyone: \(large.records.sorted())")
        #expect(small.standbyMost == 2, "a standby heartbeats its service's hub and deputy")
        #expect(large.standbyMost == small.standbyMost, "a standby heartbeats its service's hub and deputy, whatever N")
        #expect(large.average < 4, "\(large.average) datagrams per member per interval at 200 members")
    }

    /// Issue 13: a joiner heartbeats its service's hub and deputy and its seed, as a standby
    /// does, not every member of its service it knows; so what it sends while joining, and the
    /// answers it draws, do not grow with its service (docs/HANDBOOK.md, "hub").
    @Test func aJoinersDatagramsPerIntervalDoNotGrowWithItsService() {
        func joining(_ count: Int) -> (joiner: Double, others: Double) {
            var cluster = LocalCluster()
            cluster.add("echo", seeds: [])
            cluster.run(forMs: 500)
            for _ in 1..<count { cluster.add("echo") }
            cluster.run(forMs: 3_000)
            cluster.sent = [:]
            let joiner = cluster.add("echo")
            var intervals = 0
            while cluster.nodes[joiner].status == .joining {
                cluster.run(forMs: 100)
                intervals += 1
            }
            let others = cluster.sent.filter { $0.key != joiner }.values.reduce(0, +)
            return (Double(cluster.sent[joiner, default: 0]) / Double(intervals), Double(others) / Double(count) / Double(intervals))
        }
        let small = joining(10)
        let large = joining(200)
        #expect(large.joiner <= 3, "\(large.joiner) datagrams per interval from a joiner among 200")
        #expect(large.joiner <= small.joiner + 0.5, "a joiner sends as much among 200 as among 10: \(large.joiner), \(small.joiner)")
        #expect(large.others < 4, "\(large.others) datagrams per member per interval at 200 while one joins")
    }

    /// A death is urgent news and goes before ordinary news: a hub's backlog of its service's joins
    /// and admissions (one entry each, 8 a heartbeat) does not hold it back, so another service's
    /// standbys, which hold the dead primary second-hand, drop it within two rounds of news
    /// (docs/HANDBOOK.md, "gossip", "failure-detection math").
    @Test func aDeathIsNotHeldBackBehindABacklogOfNews() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.run(forMs: 500)
        for index in 1..<200 { cluster.add(index % 2 == 0 ? "echo" : "resize") }
        // Soon after the joins, while the hubs' news of them is still queued (first in, first out,
        // every echo record dropped it after 1 s).
        cluster.run(forMs: 800)
        let primary = try! #require(cluster.primaries(of: "resize").first)
        let droppedAfter = cluster.crashAndTimeEveryRecordsDrop(primary, forMs: 2_000)
        let bound = cluster.nodes[0].config.suspectAfterMs + 3 * 100
        #expect(droppedAfter.map { $0 <= bound } ?? false, "every record dropped it after \(droppedAfter.map { "\($0) ms" } ?? "never"), bound \(bound) ms")
    }

    /// A burst of joins answered with a number each left every joiner holding a number of the
    /// primary far above its regular heartbeats (795 against 697 after 199 joins). Relayed after
    /// its death, joiner after joiner, they rose like a live member's and kept it alive in its
    /// deputy's record for another suspect-after. The answers of one tick share one number.
    @Test func theAnswersOfOneTickShareOneNumber() {
        var cluster = LocalCluster.threeEchoSettled()
        let primary = cluster.nodes[0]
        var answers: [UInt64] = []
        for port in 9_100..<9_110 {
            var rng = SeededRandom(seed: UInt64(port))
            let join = Heartbeat(
                sender: NodeID(admittedAtUnixMs: 1, using: &rng), service: primary.config.service, status: .joining,
                priority: 0, epoch: 0, workload: Workload(), address: .ipv4(127, 0, 0, 1, port: UInt16(port)),
                flags: .join, sequence: 1)
            for case .send(let answer, let targets) in cluster.nodes[0].receive(join, nowMs: cluster.nowMs)
            where targets == [join.address] {
                answers.append(answer.sequence)
            }
        }
        #expect(answers.count == 10 && Set(answers).count == 1, "\(answers)")
        // The next tick's heartbeat and answers take new numbers.
        let regular = cluster.nodes[0].tick(nowMs: cluster.nowMs + 100).compactMap { directive -> UInt64? in
            if case .send(let heartbeat, _) = directive { heartbeat.sequence } else { nil }
        }
        #expect(regular.allSatisfy { $0 > answers[0] } && !regular.isEmpty)
    }

    /// Simulation seeds 9792 and 7142: a process that does not expect a member heard one heartbeat
    /// of it (an answer or a probe, sent to it alone) numbered above every regular heartbeat its
    /// detectors heard, and then the member died. The death news said the lower number, so the
    /// process kept it, for the 20 s of second-hand expiry, and its relays of the higher number
    /// brought the dead member back into records that had dropped it; a dead deputy of priority 3
    /// so kept its service from electing a new primary. Heard longer than suspect-after ago, a
    /// newer number is no evidence against the news: every record drops the member in bound.
    @Test func deathNewsDropsADeadMemberHeardAloneAboveItsLastRegularHeartbeat() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        for index in 1..<6 { cluster.add(index % 2 == 0 ? "echo" : "resize") }
        cluster.run(forMs: 2_000)
        // A plain echo standby, and a plain resize standby it holds second-hand.
        let holder = try! #require(cluster.nodes.indices.first {
            cluster.nodes[$0].config.service.value == "echo" && cluster.nodes[$0].status == .standby && !cluster.nodes[$0].isDeputy
        })
        let dead = try! #require(cluster.nodes.indices.first {
            cluster.nodes[$0].config.service.value == "resize" && cluster.nodes[$0].status == .standby && !cluster.nodes[$0].isDeputy
        })
        let deadID = cluster.nodes[dead].id
        #expect(cluster.nodes[holder].members[deadID] != nil)
        // Its last datagram, an answer to the holder alone, then it crashes.
        let last = cluster.nodes[dead].selfMember(nowMs: cluster.nowMs)
        let answer = Self.forged(cluster.nodes[dead], epoch: last.epoch, sequence: last.sequence + 1)
        cluster.deliver(cluster.nodes[holder].receive(answer, nowMs: cluster.nowMs), from: holder)
        let droppedAfter = cluster.crashAndTimeEveryRecordsDrop(dead, forMs: 3_000)
        let bound = cluster.nodes[0].config.suspectAfterMs + 3 * 100
        #expect(droppedAfter.map { $0 <= bound } ?? false, "every record dropped it after \(droppedAfter.map { "\($0) ms" } ?? "never"), bound \(bound) ms")
    }

    /// The deputy (docs/HANDBOOK.md, "deputy") takes over when the primary dies, and only then:
    /// cut off from the primary's own heartbeats for a second, it hears the primary vouched for
    /// in every standby's gossip and stays standby; once the primary is silent to everyone, it
    /// takes over within the failure timeout's tick.
    @Test func theDeputyCutOffFromThePrimaryDoesNotTakeOverButDoesWhenItDies() {
        var cluster = LocalCluster()
        for _ in 0..<6 { cluster.add("echo") }
        cluster.run(forMs: 2_000)
        #expect(cluster.primaries(of: "echo") == [0])
        cluster.cut = [LocalCluster.Cut(from: 0, to: 1)]
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo") == [0], "\(cluster.log)")
        #expect(cluster.nodes[1].members.keys.contains(cluster.nodes[0].id))
        cluster.cut = []
        cluster.silenced = [0]
        let crashedAt = cluster.nowMs
        var takenOverAt: Int64?
        cluster.run(forMs: 1_000) { cluster in
            if takenOverAt == nil && cluster.primaries(of: "echo") == [1] { takenOverAt = cluster.nowMs }
        }
        let bound = cluster.nodes[1].config.suspectAfterMs + 100
        #expect(takenOverAt.map { $0 - crashedAt <= bound } ?? false, "taken over \(takenOverAt.map { "\($0 - crashedAt) ms" } ?? "never")")
    }

    /// Indirect probes (docs/HANDBOOK.md, "indirect probe"): four processes, two services of two,
    /// so the echo deputy hears its primary from three sources only (G + 2(S − 1)). Everything
    /// those would tell it is lost: the primary's datagrams to it, and every datagram the others
    /// send it, except those sent in answer to a request to check the primary (a heartbeat naming
    /// it `suspect`) or on hearing the primary itself (passing its answer on). Without indirect
    /// probes the deputy takes over from its live primary; with them it asks the other service's
    /// core to check it, hears it vouched for, and stays standby for 10 s. When the primary
    /// really dies, nobody hears it and the deputy takes over within suspect-after and a tick.
    @Test func aDeputyAsksOthersToCheckASilentPrimaryBeforeItTakesOver() {
        func run(helpers: Int) -> (takeovers: [String], failoverMs: Int64?) {
            var cluster = LocalCluster()
            for service in ["echo", "resize", "echo", "resize"] {
                cluster.add(service) { $0.indirectProbeHelpers = helpers }
            }
            cluster.run(forMs: 2_000)
            #expect(cluster.primaries(of: "echo") == [0] && cluster.nodes[2].isDeputy)
            let primary = cluster.nodes[0].id
            cluster.drop = { from, to, trigger in
                guard to == 2 else { return false }
                guard from != 0, let trigger else { return true }
                return trigger.sender != primary && !trigger.gossip.contains { $0.id == primary && $0.flags.contains(.suspect) }
            }
            let settled = cluster.log.count
            cluster.run(forMs: 10_000)
            let takeovers = cluster.log[settled...].filter { $0.hasPrefix("2: ") && $0.contains("-> primary") }
            cluster.silenced = [0]
            let crashedAt = cluster.nowMs
            var takenOverAt: Int64?
            cluster.run(forMs: 1_000) { cluster in
                if takenOverAt == nil && cluster.primaries(of: "echo") == [2] { takenOverAt = cluster.nowMs }
            }
            return (takeovers, takenOverAt.map { $0 - crashedAt })
        }
        let before = run(helpers: 0)
        #expect(!before.takeovers.isEmpty, "without indirect probes the deputy takes over from its live primary")
        let after = run(helpers: 3)
        #expect(after.takeovers.isEmpty, "\(after.takeovers)")
        let bound = MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1)).suspectAfterMs + 100
        #expect(after.failoverMs.map { $0 <= bound } ?? false,
                "taken over \(after.failoverMs.map { "\($0) ms" } ?? "never") after the crash, bound \(bound) ms")
    }

    /// Indirect probes under random loss alone (docs/HANDBOOK.md, "Loss"): four processes, two
    /// services of two, every datagram lost with 65 % probability for 300 s, five loss streams,
    /// with indirect probes off and on. Every process that becomes primary meanwhile took over
    /// from a live one. (At 30 % loss neither takes over in this harness, whose deliveries are
    /// instantaneous; the miss is too rare to count there.)
    @Test func heavyRandomLossMakesADeputyWithFewSourcesTakeOverRarely() {
        func takeovers(helpers: Int, lossSeed: UInt64) -> Int {
            var cluster = LocalCluster()
            for service in ["echo", "resize", "echo", "resize"] {
                cluster.add(service) { $0.indirectProbeHelpers = helpers }
            }
            cluster.run(forMs: 2_000)
            #expect(cluster.primaries(of: "echo") == [0] && cluster.primaries(of: "resize") == [1])
            let settled = cluster.log.count
            cluster.loss = SeededRandom(seed: lossSeed)
            cluster.lossRate = 0.65
            cluster.run(forMs: 300_000)
            return cluster.log[settled...].filter { $0.contains("-> primary") && !$0.contains("primary ->") }.count
        }
        var before = 0, after = 0
        for lossSeed in UInt64(1)...5 {
            before += takeovers(helpers: 0, lossSeed: lossSeed)
            after += takeovers(helpers: 3, lossSeed: lossSeed)
        }
        print("65 % loss, 5 × 300 s, four processes: \(before) takeovers from a live primary without indirect probes, \(after) with")
        // 38 and 9 when written (the loss streams are seeded; the order of directives is not).
        #expect(before >= 10, "the loss reaches the miss without indirect probes")
        #expect(after * 2 <= before, "\(after) takeovers with indirect probes, \(before) without")
    }

    @Test func aLoneProcessBecomesPrimaryAfterItsDiscoveryWindow() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.run(forMs: 200)
        #expect(cluster.nodes[0].status == .joining)
        cluster.run(forMs: 200)
        #expect(cluster.nodes[0].status == .primary)
        #expect(cluster.nodes[0].epoch == 1)
    }

    @Test func joinersLearnEveryoneAndAgreeOnOnePrimaryPerService() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.run(forMs: 500)
        for service in ["echo", "resize", "echo", "resize"] { cluster.add(service) }
        cluster.run(forMs: 1_500)
        #expect(cluster.primaries(of: "echo") == [0])
        #expect(cluster.primaries(of: "resize").count == 1)
        for node in cluster.nodes {
            #expect(node.members.count == 4)
            #expect(node.primary(of: try! ServiceName("echo"), nowMs: cluster.nowMs)?.id == cluster.nodes[0].id)
        }
    }

    @Test func concurrentJoinersOfOneServiceAreStaggeredIntoOnePrimary() {
        var cluster = LocalCluster()
        cluster.add("agent", seeds: [])
        cluster.run(forMs: 500)
        for _ in 0..<5 { cluster.add("echo") }
        cluster.run(forMs: 2_000) { cluster in
            #expect(cluster.primaries(of: "echo").count <= 1, "\(cluster.log)")
        }
        #expect(cluster.primaries(of: "echo") == [1], "the oldest joiner wins: \(cluster.log)")
    }

    @Test func aHigherPriorityNewcomerTakesOverThroughToBecomePrimary() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.run(forMs: 1_000)
        let oldEpoch = cluster.nodes[0].epoch
        let newcomer = cluster.add("echo", priority: 5)
        cluster.run(forMs: 1_000) { cluster in
            #expect(cluster.primaries(of: "echo").count <= 1)
        }
        #expect(cluster.primaries(of: "echo") == [newcomer])
        #expect(cluster.nodes[newcomer].epoch > oldEpoch)
        #expect(cluster.log.contains { $0.hasPrefix("\(newcomer): standby -> to-become-primary") })
        #expect(cluster.log.contains { $0.hasPrefix("0: primary -> standby") && $0.contains("hands over") })
    }

    @Test func aPrimaryThatWasPausedStepsDownWhenItHearsTheNewEpoch() {
        var cluster = LocalCluster.threeEchoSettled()
        #expect(cluster.primaries(of: "echo") == [0])
        cluster.silenced = [0]  // paused: it neither sends, hears nor ticks
        cluster.run(forMs: 1_000)
        let successor = cluster.primaries(of: "echo")
        #expect(successor == [1])
        cluster.silenced = []
        #expect(cluster.nodes[0].status == .primary, "it does not know yet")
        cluster.deliver(cluster.nodes[0].tick(nowMs: cluster.nowMs + 1), from: 0)
        #expect(cluster.nodes[0].status == .standby)
        #expect(cluster.nodes[0].epoch < cluster.nodes[1].epoch)
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo") == [1], "equal priority: the resumed process does not take it back")
    }

    @Test func aLeavingPrimaryIsReplacedWithoutWaitingForTheTimeout() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.run(forMs: 1_000)
        cluster.deliver(cluster.nodes[0].leave(nowMs: cluster.nowMs), from: 0)
        #expect(cluster.nodes[1].status == .primary)
        #expect(cluster.nodes[1].members.isEmpty)
    }

    /// Simulation seeds 9165, 6164 and 4342: a process drained and left, then one restarted at its
    /// address while its seed was down (crashed, paused, or restarting itself). Nobody probed the
    /// address of a member that said goodbye, so the newcomer heard nobody, was admitted alone and
    /// became a second primary. The hub probes it, as it does a dead member's (docs/HANDBOOK.md,
    /// "departed contact"), and the newcomer joins the cluster instead.
    @Test func aProcessRestartedWhereOneLeftFindsTheClusterWithItsSeedDown() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        let leaver = cluster.add("echo")
        let seed = cluster.add("echo")
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo") == [0])
        cluster.deliver(cluster.nodes[leaver].drain(nowMs: cluster.nowMs), from: leaver)
        cluster.deliver(cluster.nodes[leaver].leave(nowMs: cluster.nowMs), from: leaver)
        cluster.silenced = [leaver, seed]
        cluster.run(forMs: 1_000)
        var rng = SeededRandom(seed: 77)
        let config = MembershipConfig(
            service: try! ServiceName("echo"), address: cluster.nodes[leaver].config.address,
            seeds: [cluster.nodes[seed].config.address])
        cluster.nodes[leaver] = Membership(config: config, id: NodeID(admittedAtUnixMs: 9_000, using: &rng))
        cluster.silenced = [seed]
        cluster.deliver(cluster.nodes[leaver].start(nowMs: cluster.nowMs), from: leaver)
        cluster.run(forMs: 2_000) { cluster in
            #expect(cluster.primaries(of: "echo").count <= 1, "\(cluster.log)")
        }
        #expect(cluster.primaries(of: "echo") == [0])
        #expect(cluster.nodes[leaver].status == .standby)
        #expect(cluster.nodes[0].members[cluster.nodes[leaver].id] != nil)
    }

    @Test func staleAndForeignHeartbeatsChangeNothing() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.run(forMs: 1_000)
        let before = cluster.nodes[1].members
        var old = Heartbeat(
            sender: cluster.nodes[0].id, service: try! ServiceName("echo"), status: .standby, priority: 0,
            epoch: 0, workload: Workload(), address: cluster.nodes[0].config.address, flags: [], sequence: 1)
        let reordered = cluster.nodes[1].receive(old, nowMs: cluster.nowMs)
        #expect(reordered.isEmpty, "a reordered old heartbeat is ignored")
        #expect(cluster.nodes[1].members == before)
        old.sender = cluster.nodes[1].id
        old.address = .ipv4(127, 0, 0, 9, port: 1)
        let clash = cluster.nodes[1].receive(old, nowMs: cluster.nowMs)
        #expect(clash == [.ignored(reason: "identity_clash", from: old.address)])
    }

    // MARK: Forged heartbeats (issue 10, item 4): the sequence fence is bounded in time

    /// The bound after the last fault within which one primary remains: suspectAfter + 2 × interval.
    private static let boundMs: Int64 = 350 + 2 * 100

    /// A heartbeat in the name of `node` as the cluster knows it, to be forged.
    private static func forged(_ node: Membership, status: MemberStatus = .standby, epoch: UInt64 = 0,
                               flags: Heartbeat.Flags = [], sequence: UInt64) -> Heartbeat {
        Heartbeat(sender: node.id, service: node.config.service, status: status, priority: node.config.priority,
                  epoch: epoch, workload: Workload(), address: node.config.address, flags: flags, sequence: sequence)
    }

    /// The relayer's next heartbeat, as the receiver knows it, carrying `gossip` (forged in its
    /// name), delivered to the receiver.
    @discardableResult
    private static func relay(
        _ gossip: [Heartbeat.Gossip], from relayer: Int, to receiver: Int, in cluster: inout LocalCluster
    ) -> [MembershipDirective] {
        var carrier = forged(cluster.nodes[relayer], sequence: cluster.nodes[receiver].members[cluster.nodes[relayer].id]!.sequence + 1)
        carrier.gossip = gossip
        let directives = cluster.nodes[receiver].receive(carrier, nowMs: cluster.nowMs)
        cluster.deliver(directives, from: receiver)
        return directives
    }

    /// Three settled echo processes whose primary, node 0, stayed silent until node 1 timed it
    /// out; with the number node 1 last had of it.
    private static func primaryTimedOutAtNode1() throws -> (LocalCluster, departure: UInt64) {
        var cluster = LocalCluster.threeEchoSettled()
        let silent = cluster.nodes[0].id
        let departure = try #require(cluster.nodes[1].members[silent]).sequence
        cluster.silenced = [0]
        cluster.run(forMs: 600)
        #expect(cluster.nodes[1].members[silent] == nil)
        return (cluster, departure)
    }

    /// The heartbeats among `directives` that go to `address`.
    private static func heartbeats(in directives: [MembershipDirective], to address: NodeAddress) -> [Heartbeat] {
        directives.compactMap { directive in
            guard case .send(let heartbeat, let targets) = directive, targets.contains(address) else { return nil }
            return heartbeat
        }
    }

    /// A gossip entry about `node` with the state it would relay as `status`.
    private static func entry(about node: Membership, sequence: UInt64, status: MemberStatus) -> Heartbeat.Gossip {
        Heartbeat.Gossip(
            id: node.id, sequence: sequence, address: node.config.address,
            state: .init(service: node.config.service, status: status, priority: node.config.priority, epoch: node.epoch, workload: Workload()))
    }

    /// Runs the cluster and fails if two processes claim primary of echo for longer than the bound at a stretch.
    private static func runCheckingOverlap(_ cluster: inout LocalCluster, forMs durationMs: Int64) {
        var overlapSince: Int64?
        cluster.run(forMs: durationMs) { cluster in
            if cluster.primaries(of: "echo").count > 1 {
                let since = overlapSince ?? cluster.nowMs
                overlapSince = since
                #expect(cluster.nowMs - since <= boundMs, "two primaries for \(cluster.nowMs - since) ms: \(cluster.log)")
            } else {
                overlapSince = nil
            }
        }
    }

    @Test func aForgedLeaveWithAHugeSequenceDoesNotLockALiveStandbyOut() {
        var cluster = LocalCluster.threeEchoSettled()
        #expect(cluster.primaries(of: "echo") == [0])
        // Told to the primary only: it drops the standby, and stops heartbeating it.
        let leave = Self.forged(cluster.nodes[1], flags: [.leaving], sequence: .max)
        cluster.deliver(cluster.nodes[0].receive(leave, nowMs: cluster.nowMs), from: 0)
        #expect(cluster.nodes[0].members[cluster.nodes[1].id] == nil)
        Self.runCheckingOverlap(&cluster, forMs: Self.boundMs)
        // Its own heartbeats, counting up below the forged number, took it back into the record.
        #expect(cluster.nodes[0].members[cluster.nodes[1].id] != nil, "\(cluster.log)")
        #expect(cluster.nodes[0].members[cluster.nodes[1].id]!.sequence < .max)
        Self.runCheckingOverlap(&cluster, forMs: 2_000)
        #expect(cluster.primaries(of: "echo").count == 1)
        for node in cluster.nodes { #expect(node.members.count == 2) }
    }

    /// Simulation seed 9014: after the forged leave, a forged claim in the standby's name, numbered
    /// below the leave's but far above its real count, reached the primary first. Counting up from
    /// that number, the standby's own heartbeats never overturned the fence, and the standby, which
    /// no longer heard the primary, timed it out.
    @Test func aForgedNumberBelowAForgedLeaveDoesNotLockALiveStandbyOut() {
        var cluster = LocalCluster.threeEchoSettled()
        let leave = Self.forged(cluster.nodes[1], flags: [.leaving], sequence: .max)
        cluster.deliver(cluster.nodes[0].receive(leave, nowMs: cluster.nowMs), from: 0)
        let claim = Self.forged(cluster.nodes[1], status: .primary, epoch: 1 << 30, sequence: 1 << 59)
        cluster.deliver(cluster.nodes[0].receive(claim, nowMs: cluster.nowMs), from: 0)
        #expect(cluster.nodes[0].members[cluster.nodes[1].id] == nil)
        Self.runCheckingOverlap(&cluster, forMs: Self.boundMs)
        #expect(cluster.nodes[0].members[cluster.nodes[1].id] != nil, "\(cluster.log)")
        #expect(cluster.nodes[0].members[cluster.nodes[1].id].map { $0.sequence < 1 << 59 } == true)
        Self.runCheckingOverlap(&cluster, forMs: 2_000)
        #expect(cluster.primaries(of: "echo") == [0])
        for node in cluster.nodes { #expect(node.members.count == 2) }
    }

    @Test func aForgedPrimaryClaimWithAHigherEpochConvergesToOnePrimary() {
        var cluster = LocalCluster.threeEchoSettled()
        let forgedEpoch: UInt64 = 1 << 40
        let claim = Self.forged(cluster.nodes[0], status: .primary, epoch: forgedEpoch, sequence: .max)
        for victim in [1, 2] { cluster.deliver(cluster.nodes[victim].receive(claim, nowMs: cluster.nowMs), from: victim) }
        #expect(cluster.nodes[1].members[cluster.nodes[0].id]?.epoch == forgedEpoch)
        Self.runCheckingOverlap(&cluster, forMs: Self.boundMs)
        // The primary heard of an epoch above its own and took a fresh one above it; the records
        // hold its real heartbeats again, not the forged numbers.
        #expect(cluster.primaries(of: "echo") == [0], "\(cluster.log)")
        #expect(cluster.nodes[0].epoch > forgedEpoch)
        for victim in [1, 2] {
            let record = cluster.nodes[victim].members[cluster.nodes[0].id]
            #expect(record?.sequence ?? .max < .max)
            #expect(record?.epoch == cluster.nodes[0].epoch)
        }
        Self.runCheckingOverlap(&cluster, forMs: 2_000)
        #expect(cluster.primaries(of: "echo") == [0])
    }

    /// Simulation seed 11864: two forged claims in a live member's name, the second numbered below
    /// the first. The second is the first heartbeat heard below the forged number, so it was kept
    /// as where counting up starts, and the member's real numbers, far below it, could never count
    /// up from there: the member stayed out until `forgetAfterMs`. A lower number starts the count
    /// again (docs/HANDBOOK.md, "sequence fence").
    @Test func twoForgedNumbersOneBelowTheOtherDoNotLockALiveMemberOut() {
        var cluster = LocalCluster.threeEchoSettled()
        for sequence in [UInt64.max, UInt64.max / 2] {
            let claim = Self.forged(cluster.nodes[0], status: .primary, epoch: cluster.nodes[0].epoch, sequence: sequence)
            for victim in [1, 2] { cluster.deliver(cluster.nodes[victim].receive(claim, nowMs: cluster.nowMs), from: victim) }
        }
        // Locked out for suspect-after, the member may lose its primacy to the deputy meanwhile;
        // then it is back in every record with its own numbers.
        Self.runCheckingOverlap(&cluster, forMs: 2_000)
        #expect(cluster.primaries(of: "echo").count == 1, "\(cluster.log)")
        for victim in [1, 2] {
            #expect(cluster.nodes[victim].members[cluster.nodes[0].id].map { $0.sequence < .max / 2 } == true, "\(cluster.log)")
        }
    }

    /// A primary that answers a joiner's JOIN just before it dies leaves that joiner alone with a
    /// number of it above the last the others heard (simulation seeds 9792 and 7142 met it). Relayed
    /// once they have dropped it, that number took the dead member straight back into records that
    /// held it second-hand. A relay above a departure counts only rising again an interval later,
    /// as a live member's relays do (docs/HANDBOOK.md, "sequence fence").
    @Test func aDeadMembersLastNumberRelayedDoesNotBringItBackButALiveOnesRisingRelaysDo() throws {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        for index in 1..<6 { cluster.add(index % 2 == 0 ? "echo" : "resize") }
        cluster.run(forMs: 2_000)
        // A plain echo standby, which holds a plain resize standby second-hand, and drops it on news.
        let holder = try #require(cluster.nodes.indices.first {
            cluster.nodes[$0].config.service.value == "echo" && cluster.nodes[$0].status == .standby && !cluster.nodes[$0].isDeputy
        })
        let deadIndex = try #require(cluster.nodes.indices.first {
            cluster.nodes[$0].config.service.value == "resize" && cluster.nodes[$0].status == .standby && !cluster.nodes[$0].isDeputy
        })
        let dead = cluster.nodes[deadIndex]
        let relayer = try #require(cluster.nodes.indices.first {
            $0 != holder && $0 != deadIndex && cluster.nodes[holder].members[cluster.nodes[$0].id] != nil
        })
        // Above every number of it anyone heard, so above the holder's departure for it.
        let departure = cluster.nodes.compactMap { $0.members[dead.id]?.sequence }.max()!
        _ = cluster.crashAndTimeEveryRecordsDrop(deadIndex, forMs: 1_500)
        #expect(cluster.nodes[holder].members[dead.id] == nil)
        func relay(_ sequence: UInt64) {
            Self.relay([Self.entry(about: dead, sequence: sequence, status: .standby)], from: relayer, to: holder, in: &cluster)
        }
        // Its last number, which only the relayer heard, again and again: it stays dropped.
        relay(departure + 1)
        #expect(cluster.nodes[holder].members[dead.id] == nil)
        cluster.nowMs += 100
        relay(departure + 1)
        #expect(cluster.nodes[holder].members[dead.id] == nil)
        // Rising an interval after the first relay above: a live member's relays, taken back.
        cluster.nowMs += 100
        relay(departure + 3)
        #expect(cluster.nodes[holder].members[dead.id] != nil)
    }

    /// Simulation seed 12117's mechanism: relays of a dead member are the old numbers that records
    /// and joiners still hold, and numbers from two relayers, or a count a reordered datagram
    /// started while it lived, can look like a live member counting up. A member this process timed
    /// out itself therefore comes back only by its own heartbeat, SWIM's rule; its address is asked
    /// for one (`probe`), so a live member is back within an interval of being heard
    /// (docs/HANDBOOK.md, "departed contact").
    @Test func aMemberTimedOutHereComesBackOnlyByItsOwnHeartbeat() throws {
        var (cluster, departure) = try Self.primaryTimedOutAtNode1()
        let silent = cluster.nodes[0]
        func relay(_ sequence: UInt64) {
            Self.relay([Self.entry(about: silent, sequence: sequence, status: .primary)], from: 2, to: 1, in: &cluster)
        }
        // Relays counting up, above its departure and below it, an interval apart: none takes it back.
        for (step, sequence) in [departure + 1, departure + 3, departure + 5, departure - 2, departure - 1].enumerated() {
            cluster.nowMs += 100 * Int64(step + 1)
            relay(sequence)
            #expect(cluster.nodes[1].members[silent.id] == nil, "relayed \(sequence)")
        }
        // Node 1 asks the silent member's address to answer.
        let probes = Self.heartbeats(in: cluster.nodes[1].tick(nowMs: cluster.nowMs), to: silent.config.address)
        #expect(!probes.isEmpty && probes.allSatisfy { $0.flags.contains(.probe) })
        // Its own heartbeat, once heard again, takes it back.
        cluster.silenced = []
        cluster.run(forMs: 300)
        #expect(cluster.nodes[1].members[silent.id] != nil, "\(cluster.log)")
    }

    /// A relay above the number a member was timed out with says it has heartbeated since (a
    /// partition healing): it is asked to answer at once, at most once an interval, instead of at
    /// the next round of contact probes (simulation seed 22737: two primaries 264 ms after a heal).
    @Test func aRelayAboveTheNumberAMemberTimedOutWithAsksItAtOnce() throws {
        var (cluster, departure) = try Self.primaryTimedOutAtNode1()
        let silent = cluster.nodes[0]
        func probesToSilent(relaying sequence: UInt64) -> [Heartbeat] {
            let directives = Self.relay([Self.entry(about: silent, sequence: sequence, status: .primary)], from: 2, to: 1, in: &cluster)
            return Self.heartbeats(in: directives, to: silent.config.address)
        }
        // Below or at the number it was timed out with: old news, nobody asked.
        #expect(probesToSilent(relaying: departure).isEmpty)
        cluster.nowMs += 5
        let asked = probesToSilent(relaying: departure + 4)
        #expect(asked.count == 1 && asked.allSatisfy { $0.flags.contains(.probe) })
        // Within the interval, more relays ask nothing more.
        cluster.nowMs += 50
        #expect(probesToSilent(relaying: departure + 5).isEmpty)
        // An interval later, a relay above asks again; the relays never take it back themselves.
        cluster.nowMs += 50
        #expect(probesToSilent(relaying: departure + 6).count == 1)
        #expect(cluster.nodes[1].members[silent.id] == nil)
        // Heard again, it answers the next ask, and its answer takes it back at once.
        cluster.silenced = []
        cluster.nowMs += 100
        #expect(probesToSilent(relaying: departure + 7).count == 1)
        #expect(cluster.nodes[1].members[silent.id] != nil, "\(cluster.log)")
    }

    @Test func aPrimaryThatWasDroppedFromARecordStepsDownForTheNewerEpoch() {
        var cluster = LocalCluster.threeEchoSettled()
        let oldEpoch = cluster.nodes[0].epoch
        // Node 1 (the next in rank) is told the primary left: it takes over at once, while the
        // primary, which never heard that, goes on.
        let leave = Self.forged(cluster.nodes[0], flags: [.leaving], sequence: .max)
        cluster.deliver(cluster.nodes[1].receive(leave, nowMs: cluster.nowMs), from: 1)
        #expect(cluster.nodes[1].status == .primary)
        Self.runCheckingOverlap(&cluster, forMs: Self.boundMs)
        #expect(cluster.primaries(of: "echo").count == 1, "\(cluster.log)")
        #expect(cluster.log.contains { $0.hasPrefix("0: primary -> standby") }, "the old primary stepped down: \(cluster.log)")
        #expect(cluster.nodes[0].members[cluster.nodes[1].id]!.epoch > oldEpoch)
    }

    /// Seed 9952 of the simulation: an epoch learnt only from relayed news, of a primary that is
    /// then dropped, must still be a floor for the next election. Executors keep every epoch they
    /// saw as their fence (`JobRunner.fence`); a primary elected below it would have every dispatch
    /// declined, for good (docs/HANDBOOK.md, "epoch").
    @Test func anEpochHeardOnlyInRelaysStaysTheFloorAfterItsPrimaryIsGone() throws {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.add("echo")
        cluster.add("resize")
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo") == [0])
        // A resize process relays a claim of echo's primary at a huge epoch by a member nobody hears.
        var rng = SeededRandom(seed: 7)
        let phantom = NodeID(admittedAtUnixMs: 1, using: &rng)
        let forgedEpoch: UInt64 = 1 << 40
        Self.relay([Heartbeat.Gossip(
            id: phantom, sequence: 1, address: .ipv4(127, 0, 0, 1, port: 9_099),
            state: .init(service: try ServiceName("echo"), status: .primary, priority: 0, epoch: forgedEpoch, workload: Workload()))],
            from: 3, to: 2, in: &cluster)
        #expect(JobView(cluster.nodes[2], nowMs: cluster.nowMs).highestEpoch == forgedEpoch)
        // The phantom is never heard and expires from every record; echo's primary is then above it.
        cluster.run(forMs: cluster.nodes[2].config.secondHandExpiryMs + 2_000)
        #expect(cluster.nodes.allSatisfy { $0.members[phantom] == nil })
        let primaries = cluster.primaries(of: "echo")
        #expect(primaries.count == 1, "\(cluster.log)")
        for primary in primaries { #expect(cluster.nodes[primary].epoch > forgedEpoch, "\(cluster.log)") }
    }

    @Test func aForgedGossipSequenceGoesNoFurtherAndLocksNobodyOut() {
        var cluster = LocalCluster.threeEchoSettled()
        let subject = cluster.nodes[2].id
        // Node 1's next heartbeat, with an entry about node 2 slipped in, reaches node 0.
        Self.relay([Heartbeat.Gossip(id: subject, sequence: .max, address: cluster.nodes[2].config.address)], from: 1, to: 0, in: &cluster)
        // Node 0 relays what it heard from node 2 itself, not the forged number.
        let relayed = cluster.nodes[0].tick(nowMs: cluster.nowMs + 1).flatMap { directive -> [Heartbeat.Gossip] in
            if case .send(let heartbeat, _) = directive { return heartbeat.gossip }
            return []
        }
        #expect(relayed.contains { $0.id == subject })
        #expect(!relayed.contains { $0.id == subject && $0.sequence == .max })
        // Node 2 pauses past the timeout: node 0 drops it, remembering the forged number.
        cluster.silenced = [2]
        cluster.run(forMs: 500)
        #expect(cluster.nodes[0].members[subject] == nil)
        cluster.silenced = []
        Self.runCheckingOverlap(&cluster, forMs: Self.boundMs)
        #expect(cluster.nodes[0].members[subject] != nil, "\(cluster.log)")
        #expect(cluster.primaries(of: "echo") == [0])
    }

    /// A primary claim in a live member's name with a huge sequence, sent straight to one process,
    /// which is then cut off from the member and times it out: a plain standby of another service,
    /// cut off with two of its service (so it stays a plain standby, which the member never
    /// heartbeats) after `secondHandExpiryMs`; a hub, which expects the member, alone after
    /// suspect-after. Once the cut heals, that process takes the member back by the sequence
    /// fence's rule (counting up, an interval apart, after `sequenceTrustMs`) within a few
    /// intervals of the cluster reconnecting, whether it hears the member itself or only in relays,
    /// not after `forgetAfterMs` (docs/HANDBOOK.md, "sequence fence").
    @Test(arguments: [true, false])
    func aMemberTimedOutAfterAForgedClaimComesBackWhenThePartitionHeals(plainStandby: Bool) throws {
        var cluster = LocalCluster()
        let member = cluster.add("echo", seeds: [])
        cluster.run(forMs: 500)
        // sha256: node 1 its hub (the oldest), 2 its deputy, 3 to 5 plain standbys, which join
        // through node 1 and so never have the echo primary's address as a seed or contact.
        let hub = cluster.add("sha256", seeds: [member])
        for _ in 0..<4 { cluster.add("sha256", seeds: [hub]) }
        cluster.run(forMs: 2_000)
        #expect(cluster.primaries(of: "echo") == [member] && cluster.primaries(of: "sha256") == [hub])
        let subject = cluster.nodes[member].id
        let side = plainStandby ? [3, 4, 5] : [hub]
        let victim = side.last!
        for node in cluster.nodes.indices where node != member { #expect(cluster.nodes[node].members[subject] != nil) }
        let forgedSequence: UInt64 = 1 << 62
        let claim = Self.forged(cluster.nodes[member], status: .primary, epoch: cluster.nodes[member].epoch,
                                sequence: forgedSequence)
        cluster.deliver(cluster.nodes[victim].receive(claim, nowMs: cluster.nowMs), from: victim)
        #expect(cluster.nodes[victim].members[subject]?.sequence == forgedSequence)
        // Cut off at once, before the member's own numbers could undercut the forged one there.
        let others = cluster.nodes.indices.filter { !side.contains($0) }
        cluster.cut = Set(side.flatMap { near in
            others.flatMap { far in [LocalCluster.Cut(from: far, to: near), LocalCluster.Cut(from: near, to: far)] }
        })
        cluster.run(forMs: cluster.nodes[victim].config.secondHandExpiryMs + 2_000)
        #expect(cluster.nodes[victim].members[subject] == nil, "timed out while cut off")
        cluster.cut = []
        // The sides find each other within `probeEveryTicks` intervals (departed contacts and
        // seeds); news crosses in 2 rounds; then two relays or heartbeats, an interval apart,
        // below the forged number (whose `sequenceTrustMs` is long over).
        let config = cluster.nodes[victim].config
        let boundMs = Int64(config.probeEveryTicks) * config.intervalMs + 2 * config.intervalMs
            + config.sequenceTrustMs + 2 * config.intervalMs
        var backAfterMs: Int64?
        let healedMs = cluster.nowMs
        while cluster.nowMs - healedMs < 5_000 {
            cluster.run(forMs: config.intervalMs)
            if backAfterMs == nil, cluster.nodes[victim].members[subject] != nil { backAfterMs = cluster.nowMs - healedMs }
        }
        #expect(cluster.nodes[victim].status == (plainStandby ? .standby : cluster.nodes[victim].status))
        let back = try #require(backAfterMs, "\(victim) never took the echo primary back: \(cluster.log)")
        #expect(back <= boundMs, "took the echo primary back \(back) ms after the partition healed (bound \(boundMs) ms)")
        let record = cluster.nodes[victim].members[subject]
        #expect(record?.sequence ?? .max < forgedSequence, "its own numbers, not the forged one")
        #expect(record?.status == .primary && record?.epoch == cluster.nodes[member].epoch)
        #expect(cluster.primaries(of: "echo") == [member] && cluster.primaries(of: "sha256").count == 1, "\(cluster.log)")
        for node in cluster.nodes.indices where node != member { #expect(cluster.nodes[node].members[subject] != nil, "\(node) holds the echo primary") }
    }

    /// Duplicated and reordered heartbeats stay stale, after the trust window too; so do a
    /// departed member's late ones. Only a sender counting up below the fence, an interval apart,
    /// once the fence is older than the window, overturns it.
    @Test func reorderingAndDuplicatesAreStillStale() {
        var membership = Membership(
            config: MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1)),
            id: NodeID(high: 1, low: 1))
        _ = membership.start(nowMs: 0)
        let peer = NodeID(high: 2, low: 2)
        func heartbeat(_ sequence: UInt64, _ flags: Heartbeat.Flags, epoch: UInt64) -> Heartbeat {
            Heartbeat(sender: peer, service: try! ServiceName("echo"), status: .standby, priority: 0, epoch: epoch,
                      workload: Workload(), address: .ipv4(127, 0, 0, 2, port: 1), flags: flags, sequence: sequence)
        }
        func receive(_ sequence: UInt64, at nowMs: Int64, _ flags: Heartbeat.Flags = [], epoch: UInt64 = 0) -> [MembershipDirective] {
            membership.receive(heartbeat(sequence, flags, epoch: epoch), nowMs: nowMs)
        }
        _ = receive(10, at: 0)
        #expect(receive(9, at: 5).isEmpty, "reordered")
        #expect(receive(10, at: 6).isEmpty, "duplicated")
        #expect(receive(8, at: 250).isEmpty, "one late datagram, past the window")
        #expect(receive(9, at: 300).isEmpty, "a duplicate of an earlier late one")
        #expect(membership.members[peer]?.sequence == 10)
        // A forged number far ahead, then the peer's own heartbeats.
        _ = receive(.max, at: 300)
        #expect(receive(11, at: 350, epoch: 7).isEmpty && receive(12, at: 450).isEmpty, "within the window")
        #expect(membership.highestEpoch[try! ServiceName("echo")] == 7, "a fenced-out heartbeat's epoch is learnt")
        _ = receive(13, at: 550)
        #expect(membership.members[peer]?.sequence == 13, "counting up below it, past the window")
        // It leaves: its late datagrams do not bring it back within the window, nor one at a time after it.
        _ = receive(20, at: 1_000, [.leaving])
        #expect(membership.members[peer] == nil)
        #expect(receive(19, at: 1_003).isEmpty && receive(18, at: 1_100).isEmpty && receive(19, at: 1_150).isEmpty)
        #expect(receive(19, at: 1_300).isEmpty)
        #expect(membership.members[peer] == nil)
    }

    @Test func theRecordIsBounded() {
        var config = MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1))
        config.maxMembers = 3
        var membership = Membership(config: config, id: NodeID(high: 1, low: 1))
        _ = membership.start(nowMs: 0)
        var ignored = 0
        for index in 0..<10 {
            let heartbeat = Heartbeat(
                sender: NodeID(high: 2, low: UInt64(index)), service: try! ServiceName("echo"), status: .standby,
                priority: 0, epoch: 0, workload: Workload(), address: .ipv4(127, 0, 0, 2, port: UInt16(index + 1)),
                flags: [], sequence: 1)
            ignored += membership.receive(heartbeat, nowMs: 0).filter { if case .ignored = $0 { true } else { false } }.count
        }
        #expect(membership.members.count == 3)
        #expect(ignored == 7)
    }

    /// A plain standby's tick comes with its primary's regular heartbeat once 0.8 interval has
    /// passed; a probe answer, another member's heartbeat or an early one does not start it, and
    /// the deputy and the primary tick by their timer alone (docs/HANDBOOK.md, "interval").
    @Test func onlyAPlainStandbyTicksOnItsPrimarysHeartbeat() {
        var cluster = LocalCluster()
        for _ in 0..<4 { cluster.add("echo") }
        cluster.run(forMs: 2_000)
        #expect(cluster.primaries(of: "echo") == [0])
        let ticking = cluster.nodes.indices.filter { cluster.nodes[$0].ticksOnPrimaryBeat }
        #expect(ticking.count == 2 && !ticking.contains(0), "the primary and the deputy tick by their timer: \(ticking)")
        let deputy = try! #require(cluster.nodes.indices.first { $0 != 0 && !ticking.contains($0) })
        let standby = cluster.nodes[ticking[0]]
        let beat = Self.forged(cluster.nodes[0], status: .primary, epoch: 1, sequence: 1_000)
        let lastTick = cluster.nowMs
        #expect(standby.startsTick(beat, nowMs: lastTick + 80))
        #expect(!standby.startsTick(beat, nowMs: lastTick + 79), "not before 0.8 interval")
        #expect(!standby.startsTick(Self.forged(cluster.nodes[0], status: .primary, epoch: 1, flags: .probe, sequence: 1_000),
                                    nowMs: lastTick + 100), "a probe answer")
        #expect(!standby.startsTick(Self.forged(cluster.nodes[deputy], sequence: 1_000), nowMs: lastTick + 100), "a standby's")
        #expect(!cluster.nodes[deputy].startsTick(beat, nowMs: lastTick + 100), "the deputy")
    }

    /// A partition longer than `forgetAfterMs` (5 minutes) heals: a process keeps announcing
    /// itself to its `--join` seeds whatever became of them, so a seed it dropped as dead is
    /// found again when the network comes back, however long it was gone.
    @Test func aPartitionLongerThanTheForgetHorizonHeals() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo") == [0])
        cluster.cut = [LocalCluster.Cut(from: 0, to: 1), LocalCluster.Cut(from: 1, to: 0)]
        cluster.run(forMs: cluster.nodes[1].config.forgetAfterMs + 60_000)
        #expect(cluster.primaries(of: "echo") == [0, 1], "each side elected its own: \(cluster.log)")
        cluster.cut = []
        cluster.run(forMs: 2_000)
        #expect(cluster.primaries(of: "echo").count == 1, "\(cluster.log)")
        #expect(cluster.nodes.allSatisfy { $0.members.count == 1 })
    }

    @Test func resolvedSeedsJoinTwoLoneProcessesIntoOnePrimary() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo", seeds: [])
        cluster.run(forMs: 500)
        #expect(cluster.primaries(of: "echo") == [0, 1], "each alone: \(cluster.log)")
        // The name of process 0 resolves only now (a headless service that gained it).
        let announce = cluster.nodes[1].seedsResolved([cluster.nodes[0].config.address], nowMs: cluster.nowMs)
        #expect(announce.count == 1, "announced at once: \(announce)")
        cluster.deliver(announce, from: 1)
        cluster.run(forMs: 1_000)
        #expect(cluster.primaries(of: "echo").count == 1, "\(cluster.log)")
        #expect(cluster.nodes.allSatisfy { $0.members.count == 1 })
    }

    @Test func resolvedSeedsAreAnnouncedToOnceEachAndReplacedByTheNextAnswer() {
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo", seeds: [0])
        cluster.run(forMs: 1_000)
        var node = cluster.nodes[1]
        let nowhere = NodeAddress.ipv4(10, 9, 9, 9, port: 7946)
        func targets(_ directives: [MembershipDirective]) -> [NodeAddress] {
            directives.flatMap { directive -> [NodeAddress] in
                guard case .send(_, let to) = directive else { return [] }
                return to
            }
        }
        // Its own address and a live member's are never seeds; a new address is, once.
        let live = cluster.nodes[0].config.address
        #expect(targets(node.seedsResolved([node.config.address, live, nowhere], nowMs: 1_000)) == [nowhere])
        #expect(targets(node.seedsResolved([nowhere, live], nowMs: 1_100)).isEmpty, "already a seed")
        // An answer without it drops it: named again, it is announced to again.
        #expect(targets(node.seedsResolved([live], nowMs: 1_200)).isEmpty)
        #expect(targets(node.seedsResolved([nowhere], nowMs: 1_300)) == [nowhere])
    }

    @Test func settingsAreValidated() {
        var config = MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1), intervalMs: 5)
        #expect(throws: MembershipConfigError.self) { try config.validate() }
        config = MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1), intervalMs: 100, suspectAfterMs: 150)
        #expect(throws: MembershipConfigError.self) { try config.validate() }
        config = MembershipConfig(service: try! ServiceName("echo"), address: .ipv4(127, 0, 0, 1, port: 1))
        #expect(config.suspectAfterMs == 350)
        #expect(throws: Never.self) { try config.validate() }
    }
}
