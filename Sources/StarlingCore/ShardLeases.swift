/// The primary's side of key-shard leases (docs/HANDBOOK.md, "Key shards"): which executor each
/// of the 64 shards belongs to under this epoch, what each executor has been told it holds, and
/// what it was told it no longer holds but has not confirmed.
///
/// The owner of a shard is where its keys meet: a key of an owned shard that some other entry
/// node forwards is sent to the owner (which attaches it to its run, answers it from its recent
/// outcomes, or runs it), so a key that the owner runs without asking anyone never runs twice.
/// An owner is **granted** its shard, and runs keys of it that its own clients submit, only once
/// no job of that shard that the owner could not know of runs anywhere else. Part of `JobRouter`.
struct ShardLeases: Sendable {
    /// A key an executor runs or holds that the router has no ticket for: it released the key's
    /// shard while running it, or a new primary learned of it from a `running` list.
    struct Held: Sendable {
        var executor: NodeAddress
        var sinceMs: Int64
    }

    /// Most keys held elsewhere that are remembered; beyond it, further keys are not (a frame
    /// with more than the executors could be running is not believed).
    static let maxHeld = 65_536

    /// The executor each shard belongs to; nil while no executor but the primary can run jobs.
    private(set) var owner: [NodeAddress?] = Array(repeating: nil, count: KeyShard.count)
    /// What each executor was last told it holds.
    private(set) var granted: [NodeAddress: KeyShardSet] = [:]
    /// Shards an executor was told it no longer holds, until its `released` confirms it.
    private(set) var revoking: [NodeAddress: KeyShardSet] = [:]
    private(set) var held: [JobKey: Held] = [:]
    /// Executors whose lease frame the shell could not send: it goes again at the next tick.
    private var leaseDropped: Set<NodeAddress> = []
    /// Executors that declined a dispatch of this epoch as stale: they take no lease of it.
    private(set) var fencedOff: Set<NodeAddress> = []

    /// Shards owned by an executor that does not hold them yet.
    var hasUngranted: Bool {
        owner.indices.contains { shard in owner[shard].map { !(granted[$0]?.contains(shard) ?? false) } ?? false }
    }

    /// Where a job of `key` must go, if anywhere in particular: the executor that runs it already,
    /// or the one that holds or is giving back its shard — unless that one is among the job's
    /// `entries`, since an entry node never runs a key it waits on (it forwarded it).
    func boundExecutor(for key: JobKey, entries: [NodeAddress]) -> NodeAddress? {
        if !held.isEmpty, let running = held[key] { return running.executor }
        let shard = key.shard
        var target = owner[shard]
        if !revoking.isEmpty, let giving = revoking.first(where: { $0.value.contains(shard) }) { target = giving.key }
        guard let target, !entries.contains(target) else { return nil }
        return target
    }

    // MARK: Changes

    /// Shares the shards among `candidates` (executors with slots, not the primary itself) in
    /// proportion to their slots, moving as few as it can; executors in `present` that are not
    /// candidates (draining) give theirs back; those not present (gone) lose theirs at once.
    /// Returns the lease frames to send: every executor whose lease shrank.
    mutating func rebalance(candidates: [JobRouter.Executor], present: Set<NodeAddress>) -> [(NodeAddress, KeyShardSet)] {
        for gone in Set(granted.keys).union(revoking.keys).union(held.values.map(\.executor)) where !present.contains(gone) {
            forget(gone)
        }
        let quota = Self.quota(candidates.filter { !fencedOff.contains($0.address) })
        var kept: [NodeAddress: Int] = [:]
        var next = [NodeAddress?](repeating: nil, count: KeyShard.count)
        for shard in owner.indices {
            guard let current = owner[shard], kept[current, default: 0] < quota[current, default: 0] else { continue }
            next[shard] = current
            kept[current, default: 0] += 1
        }
        var free = next.indices.filter { next[$0] == nil }[...]
        for executor in candidates.map(\.address).sorted() {
            while kept[executor, default: 0] < quota[executor, default: 0], let shard = free.popFirst() {
                next[shard] = executor
                kept[executor, default: 0] += 1
            }
        }
        owner = next
        var frames: [(NodeAddress, KeyShardSet)] = []
        for (executor, holds) in granted.sorted(by: { $0.key < $1.key }) {
            let keeps = holds.intersection(owned(by: executor))
            guard keeps != holds else { continue }
            revoking[executor, default: .none] = revoking[executor, default: .none].union(holds.subtracting(keeps))
            granted[executor] = keeps
            frames.append((executor, keeps))
        }
        return frames
    }

    /// Grants each owner the shards it owns and does not hold yet, except those in `blocked` (a
    /// job of the shard runs elsewhere without the owner knowing it) and those still being given
    /// back. Returns the lease frames to send.
    mutating func grant(blocked: KeyShardSet) -> [(NodeAddress, KeyShardSet)] {
        let givingBack = revoking.values.reduce(KeyShardSet.none) { $0.union($1) }
        var frames: [(NodeAddress, KeyShardSet)] = []
        for executor in Set(owner.compactMap { $0 }).sorted() {
            let holds = granted[executor, default: .none]
            let more = owned(by: executor).subtracting(holds).subtracting(blocked).subtracting(givingBack)
            guard !more.isEmpty else { continue }
            granted[executor] = holds.union(more)
            frames.append((executor, holds.union(more)))
        }
        return frames
    }

    /// An executor's answer to its lease: once it holds what it was last told, nothing it gave
    /// back is pending any more. Keys it still runs of other shards and that the router holds no
    /// ticket for are remembered as held there (`unknown`).
    mutating func released(by executor: NodeAddress, holding: KeyShardSet, unknown: [JobKey], nowMs: Int64) {
        if holding == granted[executor, default: .none] { revoking[executor] = nil }
        remember(unknown, heldBy: executor, nowMs: nowMs)
    }

    /// Keys an executor runs that the router has no ticket for.
    mutating func remember(_ keys: [JobKey], heldBy executor: NodeAddress, nowMs: Int64) {
        for key in keys where held.count < Self.maxHeld || held[key] != nil {
            held[key] = Held(executor: executor, sinceMs: nowMs)
        }
    }

    /// `key` is now a job the router holds (or has finished at `executor`).
    mutating func stopHolding(_ key: JobKey) {
        if !held.isEmpty { held[key] = nil }
    }

    /// Keys held elsewhere longer than `ms` (every run has ended by then) are forgotten.
    mutating func expireHeld(olderThan ms: Int64, nowMs: Int64) {
        guard !held.isEmpty else { return }
        held = held.filter { nowMs - $0.value.sinceMs < ms }
    }

    /// The shell could not send `executor`'s lease frame.
    mutating func leaseFrameDropped(to executor: NodeAddress) {
        leaseDropped.insert(executor)
    }

    /// Lease frames to send again: those the shell dropped, or all of a link that broke (its
    /// answer may have been lost). Each carries what the executor holds now.
    mutating func leasesToResend(to executor: NodeAddress? = nil) -> [(NodeAddress, KeyShardSet)] {
        let targets: [NodeAddress]
        if let executor {
            targets = granted[executor] != nil || revoking[executor] != nil ? [executor] : []
        } else {
            targets = leaseDropped.sorted()
            leaseDropped.removeAll()
        }
        return targets.map { ($0, granted[$0, default: .none]) }
    }

    /// `executor` has seen a newer epoch: it holds none of this epoch's leases (it refuses them)
    /// and gets none; the keys it runs stay known.
    mutating func fenceOff(_ executor: NodeAddress) {
        fencedOff.insert(executor)
        let stillHeld = held
        forget(executor)
        held = stillHeld
    }

    /// Stepped down: every lease of this epoch is void.
    mutating func reset() {
        self = ShardLeases()
    }

    // MARK: Internals

    func owned(by executor: NodeAddress) -> KeyShardSet {
        var set = KeyShardSet.none
        for shard in owner.indices where owner[shard] == executor { set.insert(shard) }
        return set
    }

    /// An executor that left the record holds nothing and runs nothing any more.
    private mutating func forget(_ executor: NodeAddress) {
        granted[executor] = nil
        revoking[executor] = nil
        leaseDropped.remove(executor)
        held = held.filter { $0.value.executor != executor }
        for shard in owner.indices where owner[shard] == executor { owner[shard] = nil }
    }

    /// Shards per candidate in proportion to its slots: the largest remainders round up (ties:
    /// the lower address), so the counts add up to `KeyShard.count`.
    static func quota(_ candidates: [JobRouter.Executor]) -> [NodeAddress: Int] {
        let total = candidates.reduce(0) { $0 + max(0, $1.slots) }
        guard total > 0 else { return [:] }
        var quota: [NodeAddress: Int] = [:]
        var remainders: [(remainder: Int, address: NodeAddress)] = []
        for candidate in candidates where candidate.slots > 0 {
            let share = KeyShard.count * candidate.slots
            quota[candidate.address] = share / total
            remainders.append((share % total, candidate.address))
        }
        let left = KeyShard.count - quota.values.reduce(0, +)
        remainders.sort { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.address < $1.address }
        for (_, address) in remainders.prefix(left) { quota[address]! += 1 }
        return quota
    }
}
