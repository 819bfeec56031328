/// Building heartbeats and choosing where they go.
extension Membership {
    mutating func makeHeartbeat() -> Heartbeat {
        sequence += 1
        var flags: Heartbeat.Flags = []
        if status == .joining { flags.insert(.join) }
        if isLeaving { flags.insert(.leaving) }
        if isDraining { flags.insert(.draining) }
        return Heartbeat(
            sender: id, service: config.service, status: status, priority: config.priority,
            epoch: announcedEpoch, workload: workload, address: config.address, flags: flags,
            sequence: sequence, gossip: nextGossip())
    }

    /// One heartbeat for every live member, for relayed addresses, and, while joining or every
    /// few intervals after, for seeds and departed members.
    mutating func heartbeatToAll(nowMs: Int64) -> [MembershipDirective] {
        var targets = Set(members.values.map(\.address))
        let probeEverything = status == .joining || isLeaving || tickCount % config.probeEveryTicks == 0
        for (address, contact) in contacts
        where probeEverything || contact.kind == .relayed || nowMs - contact.sinceMs < config.fastProbeMs {
            targets.insert(address)
        }
        targets.remove(config.address)
        guard !targets.isEmpty else { return [] }
        return [.send(makeHeartbeat(), to: targets.sorted())]
    }

    /// Members silent for two intervals are asked to answer at once, twice over, so that a lossy
    /// network needs many more losses in a row before a live member is taken for dead.
    mutating func probeOverdueMembers(nowMs: Int64) -> [MembershipDirective] {
        let overdue = members.values
            .filter { nowMs - $0.lastHeardMs >= 2 * config.intervalMs }
            .map(\.address)
            .sorted()
        guard !overdue.isEmpty, status != .joining else { return [] }
        return (0..<2).map { _ in
            var probe = makeHeartbeat()
            probe.flags.insert(.probe)
            return .send(probe, to: overdue)
        }
    }

    /// A rotating window of the record, so that every member is relayed within a few heartbeats.
    /// Each entry carries the sequence heard from that member directly, as `Heartbeat.Gossip`
    /// says, not what was relayed here: news travels one hop, so a wrongly high number relayed
    /// to this process goes no further, and one in this record lasts only as long as its fence.
    mutating func nextGossip() -> [Heartbeat.Gossip] {
        let ordered = members.values.sorted { $0.id < $1.id }
        let count = min(ordered.count, HeartbeatCodec.maxGossipEntries)
        guard count > 0 else { return [] }
        let start = gossipCursor % ordered.count
        gossipCursor = start + count
        return (0..<count).map { offset in
            let member = ordered[(start + offset) % ordered.count]
            return Heartbeat.Gossip(
                id: member.id, sequence: member.sequence, address: member.address)
        }
    }
}
