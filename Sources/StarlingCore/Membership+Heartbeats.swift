import DequeModule

/// Building heartbeats and choosing where they go (docs/HANDBOOK.md, "Membership", "hub", "gossip").
extension Membership {
    /// How many heartbeats in a row carry one piece of urgent news (a member gone, a primary
    /// claimed or given up); other news (a member new or changed) goes once.
    static let newsRepeats = 3
    /// At most this many news entries in one heartbeat, so the rotation always moves on.
    static let maxNewsEntries = 8
    /// At most this many rotation entries in one heartbeat (an answer to a joiner fills the
    /// datagram instead): every entry costs each receiver a decode and a record lookup, and a
    /// full datagram of them per heartbeat was most of an idle worker's CPU among 150. At 1,000
    /// members a standby still hears the whole record in a rotation within 60 intervals, well
    /// inside `secondHandExpiryMs` (docs/HANDBOOK.md, "gossip").
    static let rotationEntries = 6

    /// The next heartbeat; its gossip puts first what the members of `askersService` need to
    /// know when answering a joiner (its service's members and every leader), else the news.
    /// `suspecting` go first as indirect probe requests (`suspect` entries), `vouchingFor` first
    /// as ordinary entries (docs/HANDBOOK.md, "indirect probe").
    mutating func makeHeartbeat(
        answeringJoinOf askersService: ServiceName? = nil, nowMs: Int64? = nil,
        suspecting: [NodeID] = [], vouchingFor: [NodeID] = [], isAnswer: Bool = false
    ) -> Heartbeat {
        // The answers given within one tick share one number: each goes to one asker alone, and
        // a burst of joins answered with a number each left the joiners holding numbers far above
        // this process's regular heartbeats. Relayed after its death, from joiner after joiner,
        // they rose like a live member's, and kept it alive in its deputy's record for another
        // suspect-after (docs/HANDBOOK.md, "sequence fence").
        let sharesNumber = isAnswer && answersNumbered.map { $0 == (sequence, tickCount) } == true
        if !sharesNumber { sequence += 1 }
        if isAnswer { answersNumbered = (sequence, tickCount) }
        var flags: Heartbeat.Flags = []
        if status == .joining { flags.insert(.join) }
        if isLeaving { flags.insert(.leaving) }
        if isDraining { flags.insert(.draining) }
        var heartbeat = Heartbeat(
            sender: id, service: config.service, status: status, priority: config.priority,
            epoch: announcedEpoch, workload: workload, address: config.address, flags: flags,
            sequence: sequence)
        heartbeat.gossip = nextGossip(budget: HeartbeatCodec.maxDatagramBytes - HeartbeatCodec.headerBytes(heartbeat),
                                      answeringJoinOf: askersService, nowMs: nowMs,
                                      suspecting: suspecting, vouchingFor: vouchingFor)
        return heartbeat
    }

    /// One heartbeat for this process's targets (its topology's, docs/HANDBOOK.md, "hub"), for
    /// relayed addresses, and, while joining or every few intervals after, for seeds and departed
    /// members.
    mutating func heartbeatToAll(nowMs: Int64, topology known: Topology? = nil) -> [MembershipDirective] {
        let topology = known ?? currentTopology(nowMs: nowMs)
        var targets = heartbeatTargets(in: topology)
        // A member timed out here comes back only by its own heartbeat (`Departure.timedOutHere`),
        // so the address of one (a departed contact, or a seed, which a member that died becomes
        // again) is asked for one: a live member answers even when it would not heartbeat this
        // process otherwise (docs/HANDBOOK.md, "departed contact"). A joiner's JOIN asks already.
        let asks = mayAskForAnswers
        var asked: [NodeAddress] = []
        let probeEverything = status == .joining || isLeaving || tickCount % config.probeEveryTicks == 0
        for (address, contact) in contacts
        where (contact.kind != .left || topology.isHub)
            && (probeEverything || contact.kind == .relayed || nowMs - contact.sinceMs < config.fastProbeMs) {
            if asks && contact.kind.asksForAnswer {
                asked.append(address)
            } else {
                targets.append(address)
            }
        }
        let plain = Self.sortedUnique(targets, excluding: [config.address])
        let probed = asked.isEmpty ? [] : Self.sortedUnique(asked, excluding: [config.address] + plain)
        guard !plain.isEmpty || !probed.isEmpty else { return [] }
        let heartbeat = makeHeartbeat()
        var out: [MembershipDirective] = []
        if !plain.isEmpty { out.append(.send(heartbeat, to: plain)) }
        if !probed.isEmpty {
            var probe = heartbeat
            probe.flags.insert(.probe)
            out.append(.send(probe, to: probed))
        }
        return out
    }

    /// Sorted and deduplicated in an array: a standby has two or three targets, and a `Set`
    /// built and dropped every tick was a visible share of an idle standby's CPU.
    private static func sortedUnique(_ addresses: [NodeAddress], excluding excluded: [NodeAddress]) -> [NodeAddress] {
        guard !addresses.isEmpty else { return [] }
        var unique: [NodeAddress] = []
        unique.reserveCapacity(addresses.count)
        for address in addresses.sorted() where address != unique.last && !excluded.contains(address) {
            unique.append(address)
        }
        return unique
    }

    /// Members expected to heartbeat this process and silent for `probeAfterSilenceMs` are asked to answer
    /// at once, twice over, so that a lossy network needs many more losses in a row before a live
    /// member is taken for dead, and a member that stopped heartbeating us (its view of the hubs
    /// differs from ours for a moment) keeps being heard.
    mutating func probeOverdueMembers(nowMs: Int64) -> [MembershipDirective] {
        guard status != .joining else { return [] }
        var overdue: [NodeAddress] = []
        for (memberID, since) in expected {
            guard let member = members[memberID] else { continue }
            // Not heard itself for `probeAfterSilenceMs`, gossip or not: relays keep it alive here but
            // carry only its freshness, so one that stopped heartbeating us (its view of the
            // topology differs from ours) must be asked, or its state here would never move.
            if silenceMs(of: member, expectedSince: since, nowMs: nowMs) >= config.probeAfterSilenceMs { overdue.append(member.address) }
        }
        guard !overdue.isEmpty else { return [] }
        // The deputy also asks a few others to check its service's silent hubs (docs/HANDBOOK.md,
        // "indirect probe"): the same probe goes to them, naming those hubs as suspect.
        let suspects = suspectsToVouchFor(nowMs: nowMs)
        var targets = overdue
        if !suspects.isEmpty { targets += vouchHelpers(excluding: suspects, nowMs: nowMs) }
        targets.sort()
        return (0..<2).map { _ in .send(makeProbe(suspecting: suspects), to: targets) }
    }

    /// A heartbeat that asks its receivers to answer at once (`probe`).
    mutating func makeProbe(nowMs: Int64? = nil, suspecting: [NodeID] = [], isAnswer: Bool = false) -> Heartbeat {
        var probe = makeHeartbeat(nowMs: nowMs, suspecting: suspecting, isAnswer: isAnswer)
        probe.flags.insert(.probe)
        return probe
    }

    /// Whether this process asks others to answer it (`probe`): not while it joins (its JOIN asks
    /// already) nor once it leaves.
    var mayAskForAnswers: Bool { status != .joining && !isLeaving }

    /// How long a member expected since `since` has not been heard itself, relays aside.
    func silenceMs(of member: Member, expectedSince since: Int64, nowMs: Int64) -> Int64 {
        nowMs - max(fences[member.id]?.directSinceMs ?? member.lastHeardMs, since)
    }

    /// Marks a member as news: the next heartbeat carries it, the next `newsRepeats` if
    /// `urgent` (alive, or dead if it has departed by then).
    mutating func spread(_ memberID: NodeID, urgent: Bool) {
        if urgent {
            if urgentNews.insert(memberID).inserted { urgentNewsOrder.append(memberID) }
        } else if news[memberID] == nil {
            newsOrder.append(memberID)
        }
        news[memberID] = max(news[memberID] ?? 0, urgent ? Self.newsRepeats : 1)
    }

    /// Puts a member into the gossip rotation.
    mutating func rotate(_ memberID: NodeID) {
        guard inGossipOrder.insert(memberID).inserted else { return }
        gossipOrder.append(memberID)
    }

    /// News first, then a rotating window of the record, as many entries as fit in `budget`
    /// bytes, so that every member is relayed within a few heartbeats. Costs the entries sent, not
    /// the record's size. Each entry carries the sequence this process knows, heard from the
    /// member directly where it hears the member itself (`Heartbeat.Gossip`): a wrongly high number
    /// relayed to a process that hears the member goes no further.
    mutating func nextGossip(
        budget: Int, answeringJoinOf askersService: ServiceName?, nowMs: Int64?,
        suspecting: [NodeID] = [], vouchingFor: [NodeID] = []
    ) -> [Heartbeat.Gossip] {
        var gossip: [Heartbeat.Gossip] = []
        gossip.reserveCapacity(HeartbeatCodec.maxGossipEntries)
        var left = budget
        // At most `maxGossipEntries` (24): a scan costs less than a set made for every heartbeat.
        func included(_ memberID: NodeID) -> Bool { gossip.contains { $0.id == memberID } }
        func add(_ entry: Heartbeat.Gossip) -> Bool {
            guard gossip.count < HeartbeatCodec.maxGossipEntries else { return false }
            let bytes = HeartbeatCodec.gossipBytes(entry)
            guard bytes <= left, !included(entry.id) else { return bytes <= left }
            left -= bytes
            gossip.append(entry)
            return true
        }
        for memberID in suspecting.prefix(HeartbeatCodec.maxSuspectEntries) {
            guard let member = members[memberID] else { continue }
            _ = add(Heartbeat.Gossip(id: memberID, sequence: member.sequence, address: member.address, flags: .suspect))
        }
        for memberID in vouchingFor {
            guard let member = members[memberID] else { continue }
            _ = add(Self.entry(for: member))
        }
        if let askersService, let nowMs {
            // A joiner needs its service's members (to rank itself) and every leader (to route).
            let topology = currentTopology(nowMs: nowMs)
            for (_, leaders) in topology.leaders.sorted(by: { $0.key < $1.key }) {
                for leader in leaders where leader.id != id { _ = add(Self.entry(for: leader)) }
            }
            for member in members.values where member.service == askersService {
                guard add(Self.entry(for: member)) else { break }
            }
        }
        // Every heartbeat vouches for the members others time out directly: this service's hubs
        // and every leader, as last known (`standing`, refreshed each tick).
        for memberID in standing {
            guard let member = members[memberID] else { continue }
            guard add(Self.entry(for: member)) else { break }
        }
        // News, urgent first (a hub's backlog of its service's joins and admissions must not hold
        // a death back for seconds), each queue oldest first; urgent news `newsRepeats` times.
        var newsSent = 0
        func relay(_ queue: inout Deque<NodeID>, urgent: Bool) {
            var index = 0
            while index < queue.count, newsSent < Self.maxNewsEntries, gossip.count < HeartbeatCodec.maxGossipEntries {
                let memberID = queue[index]
                // Sent its last time, or (in the other queue) become urgent: it leaves this queue.
                guard let remaining = news[memberID], urgentNews.contains(memberID) == urgent else {
                    queue.remove(at: index)
                    continue
                }
                // Already in this heartbeat (a standing entry): it goes out all the same.
                if !included(memberID) {
                    var entry: Heartbeat.Gossip?
                    if let member = members[memberID] {
                        entry = Self.entry(for: member)
                    } else if let gone = departed[memberID], let address = gone.address {
                        entry = Heartbeat.Gossip(id: memberID, sequence: gone.announced, address: address, flags: .dead)
                    }
                    guard let entry else {
                        news[memberID] = nil
                        urgentNews.remove(memberID)
                        queue.remove(at: index)
                        continue
                    }
                    guard add(entry) else { break }
                    newsSent += 1
                }
                if remaining <= 1 {
                    news[memberID] = nil
                    urgentNews.remove(memberID)
                    queue.remove(at: index)
                } else {
                    news[memberID] = remaining - 1
                    index += 1
                }
            }
        }
        var queue = urgentNewsOrder
        urgentNewsOrder = []
        relay(&queue, urgent: true)
        urgentNewsOrder = queue
        queue = newsOrder
        newsOrder = []
        relay(&queue, urgent: false)
        newsOrder = queue
        // Then the rotation; departed members are dropped from it as the cursor meets them.
        var steps = 0
        var rotated = 0
        let rotationCap = askersService != nil ? HeartbeatCodec.maxGossipEntries
            : carriesRotation ? Self.rotationEntries : 0
        while !gossipOrder.isEmpty, steps < gossipOrder.count, rotated < rotationCap,
              gossip.count < HeartbeatCodec.maxGossipEntries {
            let at = gossipCursor % gossipOrder.count
            let memberID = gossipOrder[at]
            guard let member = members[memberID] else {
                inGossipOrder.remove(memberID)
                gossipOrder.swapAt(at, gossipOrder.count - 1)
                gossipOrder.removeLast()
                continue
            }
            steps += 1
            if included(memberID) {
                gossipCursor = at + 1
                continue
            }
            guard add(Self.entry(for: member)) else { break }
            rotated += 1
            gossipCursor = at + 1
        }
        return gossip
    }

    /// Whether this process's heartbeats carry the rotation. A settled standby's go only to its
    /// service's hub and deputy, which hear that service directly and the other services from
    /// their cores: its rotation taught them nothing and cost each of them a decode and a lookup
    /// per entry, for every member of the service, every interval (docs/HANDBOOK.md, "gossip").
    private var carriesRotation: Bool {
        guard status != .joining, !isDraining, !isLeaving, let topology = topologyCache?.topology else { return true }
        return topology.isHub || topology.isDeputy
    }

    static func entry(for member: Member) -> Heartbeat.Gossip {
        Heartbeat.Gossip(
            id: member.id, sequence: member.sequence, address: member.address,
            flags: member.leaving ? .draining : [],
            state: Heartbeat.Gossip.State(
                service: member.service, status: member.status, priority: member.priority,
                epoch: member.epoch, workload: member.workload))
    }
}
