import DequeModule

/// One process's membership, admission and election, as a pure state machine
/// (docs/HANDBOOK.md, "Membership").
///
/// Each input (`start`, `tick`, `receive`, `leave`) takes the monotonic time in milliseconds and
/// returns directives for the shell; nothing here reads a clock, touches a socket or draws
/// randomness. Every process runs the same rules on its own record: there is no master.
public struct Membership: Sendable {
    public let config: MembershipConfig
    public let id: NodeID
    public internal(set) var status: MemberStatus = .joining
    /// The epoch taken when this process last became primary (0 if never).
    public internal(set) var epoch: UInt64 = 0
    /// Set by the shell from its job accounting; carried in every heartbeat.
    public var workload = Workload()
    /// Every other process heard from, keyed by identity.
    public internal(set) var members: [NodeID: Member] = [:]
    /// The highest epoch seen per service type: the fencing floor.
    public internal(set) var highestEpoch: [ServiceName: UInt64] = [:]
    /// Moves on whenever something `JobView` reads may have changed (a member entered, left or
    /// changed status, epoch, rank, address, draining, capacity or job timeout; this process's
    /// status or epochs). A shell may skip rebuilding the view while it stays put.
    public internal(set) var recordVersion: UInt64 = 0
    public internal(set) var isLeaving = false
    public internal(set) var isDraining = false

    var sequence: UInt64 = 0
    /// The number this tick's answers share, while no other heartbeat has taken one since
    /// (`makeHeartbeat`).
    var answersNumbered: (sequence: UInt64, tick: Int)?
    var startedMs: Int64 = 0
    var admittedMs: Int64?
    var lastTickMs: Int64?
    var tickCount = 0
    var gossipCursor = 0
    /// The record's members in gossip rotation order (departed ones are dropped as the cursor meets them).
    var gossipOrder: [NodeID] = []
    var inGossipOrder: Set<NodeID> = []
    /// News to relay (a member new, changed or gone): how many more heartbeats carry each, in order
    /// (queues: each heartbeat takes its news off the front, and a hub's holds hundreds).
    var news: [NodeID: Int] = [:]
    var newsOrder: Deque<NodeID> = []
    /// The urgent part of `news` (`spread`), relayed before the rest, in its own order.
    var urgentNews: Set<NodeID> = []
    var urgentNewsOrder: Deque<NodeID> = []
    /// The members that heartbeat this process each interval as its record has it (the topology,
    /// docs/HANDBOOK.md, "hub"), and since when: only these are timed out as dead here.
    var expected: [NodeID: Int64] = [:]
    /// The hubs of this service and every service's leaders at the last tick: gossiped in every heartbeat.
    var standing: [NodeID] = []
    /// While joining: the members heard directly (not only in gossip). Admission waits until its
    /// service's hubs are among them (`admitIfReady`); emptied at admission.
    var heardWhileJoining: Set<NodeID> = []
    /// The topology of the record at `recordVersion` (and this process's leaving and draining),
    /// and the key `expected` and `standing` were last computed for: see `currentTopology`.
    var topologyCache: (key: TopologyKey, topology: Topology)?
    var expectedKey: TopologyKey?
    /// The record version at which `elect` last found nothing to do: it is a function of the
    /// record, so it is not run again until that moves.
    var electedAtVersion: UInt64?
    /// Per member, how far its sequence numbers are trusted: the sequence fence.
    var fences: [NodeID: SequenceFence] = [:]
    /// Addresses to heartbeat that are not live members: seeds, relayed addresses, departed members.
    var contacts: [NodeAddress: Contact] = [:]
    /// Recently departed identities with the last sequence heard, so stale packets do not resurrect them.
    var departed: [NodeID: Departure] = [:]
    /// The seed addresses the shell last resolved from `--join` host names (`seedsResolved`).
    var resolvedSeeds: Set<NodeAddress> = []
    /// Indirect probe requests this process took on as a helper (docs/HANDBOOK.md, "indirect
    /// probe"): per member asked about, who asked and until when. Bounded by `maxVouchTargets`
    /// and `maxVouchRequesters`.
    var vouchRequests: [NodeID: VouchRequest] = [:]

    struct VouchRequest: Sendable {
        var requesters: [NodeAddress]
        var untilMs: Int64
        /// When this process last probed the member for them.
        var probedAtMs: Int64
    }

    struct Contact: Sendable {
        /// `left`: a member of this service that said goodbye, probed only while this process is
        /// a hub (which heartbeated it anyway while it was here): one restarted at that address
        /// whose seeds are down finds the cluster (docs/HANDBOOK.md, "departed contact").
        enum Kind: Sendable {
            case seed, relayed, departed, left

            /// Heartbeats to it carry `probe` once this process is admitted: it may be a member
            /// timed out here, which comes back only by its own heartbeat (`Departure.timedOutHere`).
            var asksForAnswer: Bool { self == .seed || self == .departed }
        }
        var kind: Kind
        var sinceMs: Int64
    }

    struct Departure: Sendable {
        var sequence: UInt64
        /// What news of the departure says: the last sequence heard of it in its own regular
        /// heartbeats (never a `leaving` heartbeat's number, which one hop could forge).
        var announced: UInt64
        /// What its relays must top to take it back (`learn`): the highest number of it this
        /// record heard it count up from (`SequenceFence.vouched`), at most `announced`. A number
        /// one heartbeat alone gave, as a forged one, is not vouched for: it must not keep a live
        /// member's relays out for `forgetAfterMs` (docs/HANDBOOK.md, "sequence fence").
        var vouched: UInt64
        var address: NodeAddress?
        var atMs: Int64
        /// When `sequence` was taken: at departure for a `leaving` heartbeat's own number, earlier
        /// for the number a member timed out with. The sequence fence's window runs from here.
        var fencedSinceMs: Int64
        /// The first of its heartbeats below `sequence` heard since (or before, while a member).
        var undercut: Undercut?
        /// The first relay of it above `sequence` heard since. One relayer may hold a number the
        /// member sent it alone just before it died (an answer to its join), so relays above take
        /// it back only counting up from there, an interval or more later: a dead member's do not.
        var relayedAbove: Undercut? = nil
        /// This process timed it out itself: only its own heartbeat takes it back, never relays
        /// (docs/HANDBOOK.md, "departed contact"). Relays of a dead member are old numbers that
        /// records and joiners still hold, and several of them can look like a count going up.
        var timedOutHere = false
        /// When a relay above `sequence` last made this process ask it at once (`learn`): at most
        /// once an interval, however many relays arrive.
        var askedAtMs: Int64? = nil
    }

    /// A recorded sequence number fences out lower ones only for a bounded time
    /// (docs/HANDBOOK.md, "Membership", "sequence fence"): one wrongly high number, forged or
    /// corrupted, must not lock a live member out of the record.
    struct SequenceFence: Sendable {
        /// When the member's own sequence in the record (`Member.sequence`) was last taken.
        var directSinceMs: Int64
        /// The freshest sequence known for it, its own or relayed by others, and when it was taken.
        var freshest: UInt64
        var freshestSinceMs: Int64
        /// The first of its own heartbeats below the recorded sequence since that was taken.
        var undercut: Undercut?
        /// The highest of its recorded sequences that it was heard above, itself or in relays, an
        /// interval or more after that number was taken (counting up, an interval apart, as the
        /// fence's rule asks; the same number again vouches for nothing, since one relayer repeats
        /// a forged number it took). A number one heartbeat alone gave, forged or not, is not
        /// vouched for. Its departure's relays must top this (`Departure.vouched`).
        var vouched: UInt64 = 0
        /// A wrongly high number this second-hand entry gave up (`overturns`): relays that still
        /// carry it are refused, so it cannot come back from a record that has not given it up
        /// yet (docs/HANDBOOK.md, "sequence fence").
        var refused: UInt64? = nil
    }

    /// A heartbeat that came in below the fence: when, and numbered how.
    struct Undercut: Sendable {
        var sequence: UInt64
        var atMs: Int64

        /// Whether `sequence`, heard at `nowMs`, counts up from this one an interval or more later:
        /// what a live member's numbers do, and a dead or forged one's never.
        func isCountedUpFrom(by sequence: UInt64, atMs nowMs: Int64, intervalMs: Int64) -> Bool {
            sequence > self.sequence && nowMs - atMs >= intervalMs
        }
    }

    public init(config: MembershipConfig, id: NodeID) {
        self.config = config
        self.id = id
    }

    // MARK: Inputs

    /// Begins admission: announce ourselves to the seeds and collect answers.
    public mutating func start(nowMs: Int64) -> [MembershipDirective] {
        startedMs = nowMs
        lastTickMs = nowMs
        for seed in config.seeds where seed != config.address {
            contacts[seed] = Contact(kind: .seed, sinceMs: nowMs)
        }
        return heartbeatToAll(nowMs: nowMs)
    }

    /// The shell resolved the `--join` host names (docs/HANDBOOK.md, "seed"), again: these are all
    /// the addresses they name now. Each that is neither this process nor a live member becomes a
    /// seed to announce ourselves to (at once, and then as any seed), also one that answered before
    /// and has since died; seeds resolved earlier that no name gives any more are dropped, unless
    /// `--join` named them as numbers. Bounded by `maxContacts`.
    public mutating func seedsResolved(_ addresses: [NodeAddress], nowMs: Int64) -> [MembershipDirective] {
        let now = Set(addresses)
        for gone in resolvedSeeds.subtracting(now)
        where contacts[gone]?.kind == .seed && !config.seeds.contains(gone) {
            contacts[gone] = nil
        }
        resolvedSeeds = now
        let live = Set(members.values.map(\.address))
        var added: [NodeAddress] = []
        for address in now.sorted() where address != config.address && !live.contains(address) {
            if let known = contacts[address] {
                guard known.kind != .seed else { continue }
            } else if contacts.count >= config.maxContacts {
                continue
            }
            contacts[address] = Contact(kind: .seed, sinceMs: nowMs)
            added.append(address)
        }
        guard !added.isEmpty, !isLeaving else { return [] }
        return [.send(makeHeartbeat(), to: added)]
    }

    /// The periodic step, once per interval: failure detection, admission, election, heartbeats.
    public mutating func tick(nowMs: Int64) -> [MembershipDirective] {
        var out: [MembershipDirective] = []
        if let last = lastTickMs, nowMs - last > config.intervalMs {
            // This process itself was paused or starved and heard nothing meanwhile: the time it
            // was not listening proves nothing about its peers, so it does not count against them.
            // In place: walking `members.keys` while assigning through the dictionary copied
            // the whole record, and a tick a millisecond late comes here.
            let stallMs = nowMs - last - config.intervalMs
            var index = members.values.startIndex
            while index != members.values.endIndex {
                members.values[index].lastHeardMs = min(nowMs, members.values[index].lastHeardMs + stallMs)
                members.values.formIndex(after: &index)
            }
        }
        lastTickMs = nowMs
        tickCount += 1
        // Each tick's work is proportional to what changed, not to the record: the topology, the
        // expected set and the election are computed again only when the record moved
        // (`recordVersion`), and the second-hand and contact sweeps run every 10 ticks.
        refreshExpected(currentTopology(nowMs: nowMs), nowMs: nowMs)
        out += expireSilentMembers(nowMs: nowMs)
        if !vouchRequests.isEmpty { vouchRequests = vouchRequests.filter { $0.value.untilMs >= nowMs } }
        if tickCount % 10 == 0 { forgetOldContacts(nowMs: nowMs) }
        if status == .joining {
            out += admitIfReady(nowMs: nowMs)
        } else if electedAtVersion != recordVersion {
            let changes = elect(nowMs: nowMs)
            out += changes
            if changes.isEmpty { electedAtVersion = recordVersion }
        }
        let topology = currentTopology(nowMs: nowMs)
        refreshExpected(topology, nowMs: nowMs)
        out += heartbeatToAll(nowMs: nowMs, topology: topology)
        out += probeOverdueMembers(nowMs: nowMs)
        return out
    }

    /// A decoded heartbeat arrived.
    public mutating func receive(_ heartbeat: Heartbeat, nowMs: Int64) -> [MembershipDirective] {
        guard heartbeat.sender != id else {
            if heartbeat.address == config.address { return [] }  // our own, looped back
            return [.ignored(reason: "identity_clash", from: heartbeat.address)]
        }
        // Its epoch is news whether the heartbeat is taken, stale or leaving: a sender's epochs
        // only grow, so an old heartbeat teaches nothing, while one fenced out by a wrong sequence
        // (docs/HANDBOOK.md, "sequence fence") may carry the newest.
        learnEpoch(heartbeat.epoch, of: heartbeat.service)
        var out: [MembershipDirective] = []
        var electionInputsChanged = true
        if heartbeat.flags.contains(.leaving) {
            out += removeMember(heartbeat.sender, sequence: heartbeat.sequence, reason: .left, nowMs: nowMs,
                                saidGoodbye: heartbeat.service == config.service)
        } else {
            switch apply(heartbeat, nowMs: nowMs) {
            case .stale: return []
            case .rejected(let reason): return [.ignored(reason: reason, from: heartbeat.address)]
            case .joined(let member): out.append(.memberJoined(member))
            case .updated(let changed): electionInputsChanged = changed
            }
            // Heard itself: whoever asked this process to check it learns so at once.
            out += vouchAsked(for: heartbeat.sender, nowMs: nowMs)
        }
        let learnt = learn(from: heartbeat.gossip, nowMs: nowMs)
        out += learnt.directives
        if learnt.electionInputsChanged { electionInputsChanged = true }
        let suspects = heartbeat.flags.contains(.leaving) ? (members: [], probes: []) : takeVouchRequests(heartbeat, nowMs: nowMs)
        out += suspects.probes
        // A primary fenced by a newer epoch learns it in one round trip rather than one interval.
        let staleClaim = heartbeat.status == .primary && heartbeat.epoch < highestEpoch[heartbeat.service, default: 0]
        let asked = !heartbeat.flags.isDisjoint(with: [.join, .probe]) || staleClaim
        if asked && !heartbeat.flags.contains(.leaving) {
            // An answer never asks for an answer: two joiners would otherwise echo JOINs forever.
            // It vouches first for the members the asker suspects, as this process knows them.
            var answer = makeHeartbeat(
                answeringJoinOf: heartbeat.flags.contains(.join) ? heartbeat.service : nil, nowMs: nowMs,
                vouchingFor: suspects.members, isAnswer: true)
            answer.flags.remove(.join)
            out.append(.send(answer, to: [heartbeat.address]))
        }
        if status != .joining && electionInputsChanged {
            let changes = elect(nowMs: nowMs)
            out += changes
            // Tell everyone at once, so a handover takes one network hop rather than one interval.
            if !changes.isEmpty { out += heartbeatToAll(nowMs: nowMs) }
        }
        return out
    }

    /// The first step of a graceful stop: step down if primary and tell everyone that this process is
    /// no candidate any more, while staying in their records (so it still hears who is primary
    /// while it finishes its work). `leave` follows when it is done.
    public mutating func drain(nowMs: Int64) -> [MembershipDirective] {
        guard !isDraining, !isLeaving else { return [] }
        isDraining = true
        var out: [MembershipDirective] = []
        if status == .primary || status == .toBecomePrimary {
            out.append(change(to: .standby, reason: "draining"))
        }
        return out + heartbeatToAll(nowMs: nowMs)
    }

    /// Graceful stop: step down if primary and say goodbye, so peers re-elect without waiting for the timeout.
    public mutating func leave(nowMs: Int64) -> [MembershipDirective] {
        guard !isLeaving else { return heartbeatToAll(nowMs: nowMs) }
        isLeaving = true
        var out: [MembershipDirective] = []
        if status == .primary || status == .toBecomePrimary {
            out.append(change(to: .standby, reason: "leaving"))
        }
        return out + heartbeatToAll(nowMs: nowMs)
    }

    // MARK: Queries

    /// This process as a record entry, as it describes itself in heartbeats.
    public func selfMember(nowMs: Int64) -> Member {
        Member(
            id: id, service: config.service, status: status, priority: config.priority,
            epoch: announcedEpoch, workload: workload, address: config.address,
            lastHeardMs: nowMs, sequence: sequence, leaving: isLeaving || isDraining)
    }

    /// The primary of a service type as this process sees it (itself included).
    public func primary(of service: ServiceName, nowMs: Int64) -> Member? {
        // One pass, nothing allocated: the shell asks this every tick for every service.
        var best: Member?
        func consider(_ member: Member) {
            guard member.status == .primary, member.service == service else { return }
            if let sitting = best, (sitting.epoch, Rank(sitting)) >= (member.epoch, Rank(member)) { return }
            best = member
        }
        for member in members.values { consider(member) }
        if status == .primary && config.service == service { consider(selfMember(nowMs: nowMs)) }
        return best
    }

    /// What this process carries as its epoch: its own while primary, else the highest seen for its service.
    var announcedEpoch: UInt64 {
        status == .primary ? epoch : max(epoch, highestEpoch[config.service, default: 0])
    }
}
