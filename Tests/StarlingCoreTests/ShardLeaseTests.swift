import StarlingCore
import Testing

/// Key-shard leases (docs/HANDBOOK.md, "Key shards"): a key submitted at the executor that holds
/// its shard runs there without crossing the primary, and still meets every other submission of
/// itself there.
@Suite struct ShardLeaseTests {
    let p1 = JobBench.address(1), p2 = JobBench.address(2), p3 = JobBench.address(3)

    /// The first key `prefix0`, `prefix1`, ... whose shard is in `shards`.
    private func key(in shards: KeyShardSet, prefix: String = "k") -> String {
        (0...).lazy.map { "\(prefix)\($0)" }.first { shards.contains(try! JobKey($0).shard) }!
    }

    /// p1 primary, p2 and p3 standbys with `slots` each, leases delivered.
    private func leased(slots: Int = 2) -> JobBench {
        var bench = JobBench(processes: 3, slots: slots)
        bench.makePrimary(p1, epoch: 1, executors: [p2, p3], slots: slots)
        bench.deliverAll()
        return bench
    }

    @Test func thePrimaryLeasesEveryShardToItsStandbysInProportionToTheirSlots() {
        let bench = leased()
        let onP2 = bench.processes[p2]!.leasedShards, onP3 = bench.processes[p3]!.leasedShards
        #expect(onP2.count == 32 && onP3.count == 32, "\(onP2) \(onP3)")
        #expect(onP2.intersection(onP3).isEmpty && onP2.union(onP3) == .all)
        #expect(bench.processes[p1]!.leasedShards.isEmpty, "the primary keeps none")

        // Alone, the primary runs jobs itself and leases nothing.
        var alone = JobBench(processes: 1)
        alone.makePrimary(p1, epoch: 1, executors: [])
        alone.deliverAll()
        #expect(alone.processes[p1]!.leasedShards.isEmpty)
        alone.submit("k", at: p1)
        alone.deliverAll()
        #expect(alone.started[p1] == [try! JobKey("k")])
    }

    @Test func aKeyOfAShardItsEntryNodeHoldsRunsThereWithoutAFrame() {
        var bench = leased()
        let k = key(in: bench.processes[p2]!.leasedShards)
        bench.submit(k, at: p2)
        #expect(bench.wire.isEmpty, "nothing crosses to the primary: \(bench.wire)")
        #expect(bench.started[p2] == [try! JobKey(k)])
        bench.finishAll(at: p2)
        #expect(bench.wire.isEmpty)
        #expect(bench.okKeys(1) == [k])
        #expect(bench.processes.values.allSatisfy { $0.holdings.pending == 0 && $0.holdings.routed == 0 })

        // Submitted again, it is answered from the recent outcomes.
        bench.submit(k, at: p2, client: 2)
        #expect(bench.okKeys(2) == [k] && bench.runs == 1)
    }

    @Test func theSameKeySubmittedThroughAnotherNodeMeetsItsRunAtTheShardsHolder() {
        var bench = leased()
        let k = key(in: bench.processes[p2]!.leasedShards)
        bench.submit(k, at: p2, client: 1)
        bench.submit(k, at: p3, client: 2)
        bench.deliverAll()
        #expect(bench.runs == 1, "the primary sends it to p2, which attaches it: \(bench.started)")
        bench.finishAll(at: p2)
        bench.deliverAll()
        #expect(bench.okKeys(1) == [k] && bench.okKeys(2) == [k])

        // A key of p2's shards that only p3's client submits runs at p2 too.
        let other = key(in: bench.processes[p2]!.leasedShards, prefix: "other")
        bench.submit(other, at: p3, client: 3)
        bench.deliverAll()
        #expect(bench.started[p2] == [try! JobKey(other)])
    }

    @Test func aKeyFindingNoFreeSlotAtItsHolderIsPlacedByLoad() {
        var bench = leased(slots: 1)
        let shards = bench.processes[p2]!.leasedShards
        let first = key(in: shards, prefix: "a"), second = key(in: shards, prefix: "b")
        bench.submit(first, at: p2)
        bench.submit(second, at: p2)
        bench.deliverAll()
        #expect(bench.started[p2] == [try! JobKey(first)])
        #expect(bench.started[p3] == [try! JobKey(second)], "the least-loaded executor: \(bench.started)")
        bench.finishAll(at: p2)
        bench.finishAll(at: p3)
        bench.deliverAll()
        #expect(Set(bench.okKeys(1)) == [first, second])
    }

    /// A shard moves to a new standby only after its holder released it and what it ran of it
    /// there finished: meanwhile the key is sent to the old holder, and attaches.
    @Test func aShardMovesOnlyOnceItsHolderReleasedItAndItsRunsFinished() {
        var bench = JobBench(processes: 3)
        bench.makePrimary(p1, epoch: 1, executors: [p2])
        bench.deliverAll()
        #expect(bench.processes[p2]!.leasedShards == .all)
        // A key of a shard that will move to p3 (the upper half) runs at p2 under its lease.
        let upper = KeyShardSet(bits: 0xFFFF_FFFF_0000_0000)
        let k = key(in: upper)
        bench.submit(k, at: p2, client: 1)
        #expect(bench.started[p2] == [try! JobKey(k)])

        bench.makePrimary(p1, epoch: 1, executors: [p2, p3])
        bench.deliverAll()
        bench.tickAll()
        bench.deliverAll()
        #expect(bench.processes[p2]!.leasedShards == .all.subtracting(upper))
        #expect(bench.processes[p3]!.leasedShards.intersection(upper).count == 31, "all but the shard of \(k), which still runs at p2")

        bench.submit(k, at: p3, client: 2)
        bench.deliverAll()
        #expect(bench.runs == 1, "sent to p2, where it runs: \(bench.started)")
        bench.finishAll(at: p2)
        bench.deliverAll()
        #expect(bench.okKeys(1) == [k] && bench.okKeys(2) == [k])
        bench.tickAll()
        bench.deliverAll()
        #expect(bench.processes[p3]!.leasedShards == upper, "granted once the run ended")
    }

    /// An executor that has seen a newer epoch declines this primary's dispatches and refuses its
    /// leases: its shards go to the others, and the jobs with them.
    @Test func aStandbyFencedAboveThePrimarysEpochLosesItsShards() {
        var bench = leased()
        let seenNewer = JobView(primaryEpoch: nil, highestEpoch: 5, primaries: [bench.echo: .init(address: p1, epoch: 1)], executors: [])
        bench.carry(bench.processes[p2]!.follow(seenNewer, nowMs: 0), at: p2)
        #expect(bench.processes[p2]!.leasedShards.isEmpty)
        let k = key(in: KeyShardSet(bits: 0xFFFF_FFFF) /* p2's half */)
        bench.submit(k, at: p1)
        bench.deliverAll()
        bench.tickAll()
        bench.deliverAll()
        #expect(bench.started[p2] == nil)
        #expect(bench.started[p3] == [try! JobKey(k)], "\(bench.started)")
        #expect(bench.processes[p3]!.leasedShards == .all)
    }

    /// A standby that drains gives its shards back; what it runs still answers, and keys of its
    /// shards then run elsewhere.
    @Test func aDrainingStandbyGivesItsShardsBack() {
        var bench = leased()
        let k = key(in: bench.processes[p2]!.leasedShards)
        bench.submit(k, at: p2, client: 1)
        bench.processes[p2]!.drain()
        // The record shows p2 with no slots, as its heartbeats say once it drains.
        for address in [p1, p2, p3] {
            let view = JobView(
                primaryEpoch: address == p1 ? 1 : nil, highestEpoch: 1, primaries: [bench.echo: .init(address: p1, epoch: 1)],
                executors: [.init(address: p2, slots: 0), .init(address: p3, slots: 2)])
            bench.carry(bench.processes[address]!.follow(view, nowMs: 0), at: address)
        }
        bench.deliverAll()
        #expect(bench.processes[p3]!.leasedShards.count == 63, "all but the shard of \(k), which still runs at p2")
        bench.finishAll(at: p2)
        bench.deliverAll()
        bench.tickAll()
        bench.deliverAll()
        #expect(bench.okKeys(1) == [k])
        #expect(bench.processes[p3]!.leasedShards == .all)
        let next = key(in: KeyShardSet(bits: 0xFFFF_FFFF), prefix: "n")
        bench.submit(next, at: p3, client: 2)
        #expect(bench.started[p3] == [try! JobKey(next)], "runs where it entered")
    }
}
