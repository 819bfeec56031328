/// Who heartbeats whom (docs/HANDBOOK.md, "Membership", "hub"): per service type, its hubs (the
/// primary and the top-ranked candidates) heartbeat every member of the service, every other
/// member heartbeats only its service's hubs, and the hubs of different services heartbeat each
/// other. Every process derives this from its own record, so the hubs' load grows with the
/// size of their service and everyone else's stays constant.
extension Membership {
    /// How many top-ranked members of a service are hubs besides any that claim primary. One:
    /// the primary (normally the highest-ranked) serves its service alone, as any claimant does
    /// besides it; the next-ranked is its **deputy** (below). Three hubs made each standby send
    /// three datagrams an interval and three hubs send to everyone.
    static let hubCount = 1

    struct Topology {
        /// Per service type, its hubs: the `hubCount` highest-ranked admitted members that are not
        /// leaving, and every member that claims primary. This process included.
        var hubs: [ServiceName: [Member]] = [:]
        /// Per service type, the members that claim primary, or the highest-ranked if none does.
        var leaders: [ServiceName: [Member]] = [:]
        var isHub = false
        var isLeader = false
        /// The deputy of this process's service: its highest-ranked admitted member that is not
        /// a hub, the one that takes over when the primary dies. Every member of the service
        /// heartbeats it as well as the hubs, so it hears the primary directly and vouched for by
        /// all of them in their gossip: loss alone does not make it take over (docs/HANDBOOK.md,
        /// "deputy"). It sends as a standby does.
        /// Per service type, its deputy (see `deputy`), where it has one.
        var deputies: [ServiceName: Member] = [:]
        var deputy: Member?
        var isDeputy = false

        /// A hub or the deputy of `service`: across services these heartbeat each other.
        func isCore(_ id: NodeID, of service: ServiceName) -> Bool {
            contains(id, in: hubs, of: service) || deputies[service]?.id == id
        }

        func contains(_ id: NodeID, in table: [ServiceName: [Member]], of service: ServiceName) -> Bool {
            table[service]?.contains { $0.id == id } ?? false
        }
    }

    /// Whether this process is its service's deputy, as its record had it at the last tick: the
    /// one that takes over when the primary dies.
    public var isDeputy: Bool { topologyCache?.topology.isDeputy ?? false }

    /// Whether this process ticks when its primary's heartbeat arrives rather than by its timer
    /// alone (docs/HANDBOOK.md, "interval"): a standby that is not the deputy, so that the
    /// datagram and the tick take one wakeup. Hubs, joiners and the deputy, whose own timer
    /// decides the primary's death, tick by their timer.
    public var ticksOnPrimaryBeat: Bool { status == .standby && !isDeputy }

    /// Whether `heartbeat`, received at `nowMs`, starts this process's next tick: its primary's
    /// regular heartbeat (not a probe answer), once most (0.8) of an interval has passed since
    /// the last tick, so that ticks never come much faster than the interval.
    public func startsTick(_ heartbeat: Heartbeat, nowMs: Int64) -> Bool {
        guard ticksOnPrimaryBeat, heartbeat.status == .primary, heartbeat.service == config.service,
              !heartbeat.flags.contains(.probe), let last = lastTickMs else { return false }
        return nowMs - last >= config.intervalMs * 8 / 10
    }

    struct TopologyKey: Equatable {
        var recordVersion: UInt64
        var isLeaving: Bool
        var isDraining: Bool
    }

    /// `topology(nowMs:)`, computed again only when the record (its `recordVersion`, which moves
    /// with every member's entry, departure, status, rank or draining, and this process's status)
    /// or this process's leaving or draining moved.
    mutating func currentTopology(nowMs: Int64) -> Topology {
        let key = TopologyKey(recordVersion: recordVersion, isLeaving: isLeaving, isDraining: isDraining)
        if let cached = topologyCache, cached.key == key { return cached.topology }
        let fresh = topology(nowMs: nowMs)
        topologyCache = (key, fresh)
        return fresh
    }

    /// One pass over the record. A service none of whose members is admitted yet (as this record
    /// has it, perhaps from a stale relay) has its highest-ranked joiner as hub and leader, so
    /// the services' leaders always reach each other and correct what they hold.
    func topology(nowMs: Int64) -> Topology {
        var top: [ServiceName: [Member]] = [:]
        var claimants: [ServiceName: [Member]] = [:]
        var joiners: [ServiceName: Member] = [:]
        func consider(_ member: Member) {
            guard !member.leaving else { return }
            guard member.status != .joining else {
                if let best = joiners[member.service], Rank(best) > Rank(member) { return }
                joiners[member.service] = member
                return
            }
            if member.status.claimsPrimary { claimants[member.service, default: []].append(member) }
            var best = top[member.service, default: []]
            // The hubs and the one after them (a deputy, if it is no claimant).
            let kept = Self.hubCount + 1
            if best.count < kept || Rank(member) > Rank(best[best.count - 1]) {
                let at = best.firstIndex { Rank(member) > Rank($0) } ?? best.count
                best.insert(member, at: at)
                if best.count > kept { best.removeLast() }
                top[member.service] = best
            }
        }
        for member in members.values { consider(member) }
        if !isLeaving && !isDraining { consider(selfMember(nowMs: nowMs)) }
        var topology = Topology()
        for (service, joiner) in joiners where top[service] == nil {
            topology.hubs[service] = [joiner]
            topology.leaders[service] = [joiner]
        }
        for (service, ranked) in top {
            let best = ranked.prefix(Self.hubCount)
            let claiming = claimants[service, default: []]
            let hubs = best + claiming.filter { claimant in !best.contains { $0.id == claimant.id } }
            topology.hubs[service] = Array(hubs)
            topology.leaders[service] = claiming.isEmpty ? [best[best.startIndex]] : claiming
            if ranked.count > Self.hubCount {
                let next = ranked[Self.hubCount]
                if !hubs.contains(where: { $0.id == next.id }) { topology.deputies[service] = next }
            }
        }
        // This process is a hub, leader or deputy only once admitted.
        if status != .joining {
            topology.isHub = topology.contains(id, in: topology.hubs, of: config.service)
            topology.isLeader = topology.contains(id, in: topology.leaders, of: config.service)
        }
        topology.deputy = topology.deputies[config.service]
        if status != .joining { topology.isDeputy = topology.deputy?.id == id }
        return topology
    }

    /// Whether `member` heartbeats this process each interval, as this process's record has it:
    /// a hub of our service, any member of it while we are its hub or deputy, another service's leader while
    /// we are ours. Only these are timed out as dead here; the rest are second-hand.
    func expectsHeartbeats(from member: Member, in topology: Topology) -> Bool {
        if member.service == config.service {
            return topology.isHub || topology.isDeputy || topology.contains(member.id, in: topology.hubs, of: member.service)
        }
        return (topology.isHub || topology.isDeputy) && topology.isCore(member.id, of: member.service)
    }

    /// The addresses this process heartbeats each interval, without contacts: its service's hubs
    /// and deputy, or, while a hub, all of its service and every other service's hubs (so each hub hears every
    /// other service's leader directly and from the other hubs' gossip: a lost datagram or two is
    /// not a death).
    func heartbeatTargets(in topology: Topology) -> [NodeAddress] {
        var targets: [NodeAddress] = []
        let everyoneOfMine = topology.isHub || isDraining || isLeaving
        if everyoneOfMine {
            // A hub serves its whole service; a draining or leaving process tells everyone it
            // served as hub, briefly. A joiner announces itself as a standby heartbeats (its
            // contacts besides): the hubs serve it, and what it sends stays bounded whatever the
            // size of its service.
            for member in members.values where member.service == config.service { targets.append(member.address) }
        } else {
            for hub in topology.hubs[config.service, default: []] where hub.id != id { targets.append(hub.address) }
            if let deputy = topology.deputy, deputy.id != id { targets.append(deputy.address) }
        }
        if topology.isHub || topology.isDeputy || isLeaving {
            // Across services the hubs and deputies heartbeat each other, so a deputy hears its
            // own primary vouched for by the other services' too.
            for (service, hubs) in topology.hubs where service != config.service {
                for hub in hubs { targets.append(hub.address) }
                if let deputy = topology.deputies[service] { targets.append(deputy.address) }
            }
        }
        return targets
    }

    /// Recomputes which members are expected to heartbeat this process; one newly expected is
    /// given a full failure timeout from now rather than from when it was last relayed.
    mutating func refreshExpected(_ topology: Topology, nowMs: Int64) {
        // Nothing to do if it was computed for the record as it is (`currentTopology`'s key).
        if let key = topologyCache?.key, key == expectedKey, key.recordVersion == recordVersion { return }
        expectedKey = topologyCache?.key
        var now: [NodeID: Int64] = [:]
        for member in members.values where expectsHeartbeats(from: member, in: topology) {
            now[member.id] = expected[member.id] ?? nowMs
        }
        expected = now
        var standing: [NodeID] = []
        for hub in topology.hubs[config.service, default: []] where hub.id != id { standing.append(hub.id) }
        for (_, leaders) in topology.leaders.sorted(by: { $0.key < $1.key }) {
            for leader in leaders where leader.id != id && !standing.contains(leader.id) { standing.append(leader.id) }
        }
        self.standing = standing
    }
}
