import StarlingCore
import Testing

/// A few processes wired together by hand: every heartbeat is delivered at once, in order,
/// unless a test drops or holds it. Time moves only when a test says so.
private struct LocalCluster {
    var nodes: [Membership] = []
    var nowMs: Int64 = 0
    var log: [String] = []
    /// Indices whose traffic (both ways) is dropped, to model a pause or a crash.
    var silenced: Set<Int> = []

    @discardableResult
    mutating func add(_ service: String, priority: Int32 = 0, seeds: [Int] = [0]) -> Int {
        let index = nodes.count
        var rng = SeededRandom(seed: UInt64(index + 1))
        let config = MembershipConfig(
            service: try! ServiceName(service), priority: priority,
            address: .ipv4(127, 0, 0, 1, port: UInt16(9_000 + index)),
            seeds: seeds.filter { $0 != index }.map { .ipv4(127, 0, 0, 1, port: UInt16(9_000 + $0)) })
        nodes.append(Membership(config: config, id: NodeID(admittedAtUnixMs: 1_000 + UInt64(index), using: &rng)))
        deliver(nodes[index].start(nowMs: nowMs), from: index)
        return index
    }

    mutating func deliver(_ directives: [MembershipDirective], from sender: Int) {
        var queue = directives.map { (sender, $0) }
        while !queue.isEmpty {
            let (from, directive) = queue.removeFirst()
            switch directive {
            case .send(let heartbeat, let targets):
                guard !silenced.contains(from) else { continue }
                for target in targets {
                    guard let to = nodes.firstIndex(where: { $0.config.address == target }), !silenced.contains(to) else { continue }
                    queue += nodes[to].receive(heartbeat, nowMs: nowMs).map { (to, $0) }
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

    func primaries(of service: String) -> [Int] {
        nodes.indices.filter { nodes[$0].config.service.value == service && nodes[$0].status == .primary && !silenced.contains($0) }
    }
}

@Suite struct MembershipTests {
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
        var cluster = LocalCluster()
        cluster.add("echo", seeds: [])
        cluster.add("echo")
        cluster.add("echo")
        cluster.run(forMs: 1_000)
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
