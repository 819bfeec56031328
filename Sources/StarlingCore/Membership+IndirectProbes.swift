/// Indirect probes (docs/HANDBOOK.md, "indirect probe"), as SWIM's ping-req: a deputy that has not
/// heard one of its service's hubs for `probeAfterSilenceMs` asks a few of the members it hears best to
/// check it. Each helper answers at once, vouching for the hub as it knows it, probes the hub,
/// and passes the hub's answer on when it comes. Heavy random loss then has to take every one of
/// these paths too before the deputy takes over from a live primary; a dead one answers nobody,
/// so the takeover comes at the same tick as before.
extension Membership {
    /// A helper keeps at most this many requests, each from at most this many askers.
    static let maxVouchTargets = 8
    static let maxVouchRequesters = 4

    /// The hubs of this process's service that it has not heard itself for `probeAfterSilenceMs`, while it
    /// is the deputy (the one that would take over): the members it asks others to check.
    func suspectsToVouchFor(nowMs: Int64) -> [NodeID] {
        guard config.indirectProbeHelpers > 0, let topology = topologyCache?.topology, topology.isDeputy,
              !isLeaving, !isDraining else { return [] }
        var suspects: [NodeID] = []
        for hub in topology.hubs[config.service, default: []] where hub.id != id {
            guard let since = expected[hub.id], let member = members[hub.id] else { continue }
            if silenceMs(of: member, expectedSince: since, nowMs: nowMs) >= config.probeAfterSilenceMs { suspects.append(hub.id) }
        }
        suspects.sort()
        return Array(suspects.prefix(HeartbeatCodec.maxSuspectEntries))
    }

    /// The members to ask (`indirectProbeHelpers` of them): those expected here (they heartbeat
    /// this process, so the way back works) heard themselves most recently, not among the
    /// suspects. Its service's members hear the hub directly, as do the other services' cores.
    func vouchHelpers(excluding suspects: [NodeID], nowMs: Int64) -> [NodeAddress] {
        var heard: [(atMs: Int64, id: NodeID, address: NodeAddress)] = []
        for (memberID, _) in expected where !suspects.contains(memberID) {
            guard let member = members[memberID], !member.leaving else { continue }
            let atMs = fences[memberID]?.directSinceMs ?? member.lastHeardMs
            heard.append((atMs, memberID, member.address))
        }
        heard.sort { ($0.atMs, $1.id) > ($1.atMs, $0.id) }
        return heard.prefix(config.indirectProbeHelpers).map(\.address)
    }

    /// A heartbeat asks this process to check members (`suspect` entries): each that is in the
    /// record at the address named is probed (at most once per half interval) and remembered with
    /// the asker for two intervals, so that its next heartbeat heard here is passed on
    /// (`vouchAsked`). Only a member of the record is served, at its address as recorded, so a
    /// stranger cannot aim this process's probes. Returns the members to vouch for in the answer.
    mutating func takeVouchRequests(
        _ heartbeat: Heartbeat, nowMs: Int64
    ) -> (members: [NodeID], probes: [MembershipDirective]) {
        guard heartbeat.gossip.contains(where: { $0.flags.contains(.suspect) }),
              status != .joining, !isLeaving,
              members[heartbeat.sender]?.address == heartbeat.address else { return ([], []) }
        var vouched: [NodeID] = []
        var probe: [NodeAddress] = []
        for entry in heartbeat.gossip where entry.flags.contains(.suspect) && entry.id != id && entry.id != heartbeat.sender {
            guard let member = members[entry.id], member.address == entry.address, !member.leaving else { continue }
            vouched.append(entry.id)
            var request = vouchRequests[entry.id]
                ?? VouchRequest(requesters: [], untilMs: nowMs, probedAtMs: nowMs - config.intervalMs)
            if request.requesters.isEmpty && vouchRequests.count >= Self.maxVouchTargets { continue }
            if !request.requesters.contains(heartbeat.address) {
                guard request.requesters.count < Self.maxVouchRequesters else { continue }
                request.requesters.append(heartbeat.address)
            }
            request.untilMs = nowMs + 2 * config.intervalMs
            if nowMs - request.probedAtMs >= config.intervalMs / 2 {
                request.probedAtMs = nowMs
                probe.append(member.address)
            }
            vouchRequests[entry.id] = request
        }
        guard !probe.isEmpty else { return (vouched, []) }
        var check = makeHeartbeat()
        check.flags.insert(.probe)
        return (vouched, [.send(check, to: probe.sorted())])
    }

    /// `member` was just heard itself: whoever asked this process to check it is told, once.
    mutating func vouchAsked(for member: NodeID, nowMs: Int64) -> [MembershipDirective] {
        guard let request = vouchRequests.removeValue(forKey: member), request.untilMs >= nowMs,
              !request.requesters.isEmpty, !isLeaving else { return [] }
        return [.send(makeHeartbeat(vouchingFor: [member]), to: request.requesters.sorted())]
    }
}
