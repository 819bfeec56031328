/// Keeping the record: applying heartbeats, relayed news, failure detection (docs/HANDBOOK.md, "record").
extension Membership {
    enum ApplyOutcome {
        case joined(Member)
        /// Known before; `electionInputsChanged` says whether its status, epoch or rank moved.
        case updated(electionInputsChanged: Bool)
        /// Older than what we know (duplicated or reordered): nothing to learn.
        case stale
        case rejected(String)
    }

    mutating func apply(_ heartbeat: Heartbeat, nowMs: Int64) -> ApplyOutcome {
        let sender = heartbeat.sender
        let previous = members[sender]
        var fence = fences[sender]
        var distrusted = false
        if let previous {
            if heartbeat.sequence <= previous.sequence {
                var undercut = fence?.undercut
                let overturned = overturns(heartbeat.sequence, fence: previous.sequence, fencedAtMs: fence?.directSinceMs ?? nowMs,
                                           undercut: &undercut, nowMs: nowMs)
                guard overturned else {
                    fences[sender]?.undercut = undercut
                    return .stale
                }
                distrusted = true
            }
        } else {
            if var gone = departed[sender], heartbeat.sequence <= gone.sequence {
                // A departure fences out its member's older heartbeats, for `sequenceTrustMs`.
                guard overturns(heartbeat.sequence, fence: gone.sequence, fencedAtMs: gone.fencedSinceMs,
                                undercut: &gone.undercut, nowMs: nowMs) else {
                    departed[sender] = gone
                    return .stale
                }
                distrusted = true
            }
            guard members.count < config.maxMembers else { return .rejected("record_full") }
            departed[sender] = nil
            fence = nil
        }
        let member = Member(
            id: sender, service: heartbeat.service, status: heartbeat.status, priority: heartbeat.priority,
            epoch: heartbeat.epoch, workload: heartbeat.workload, address: heartbeat.address,
            lastHeardMs: nowMs, sequence: heartbeat.sequence, leaving: heartbeat.flags.contains(.draining))
        members[sender] = member
        // Relayed news fresher than its own heartbeat stands for `sequenceTrustMs` at most: the
        // member's own heartbeats coming in lower after that prove it wrong.
        var freshest = (sequence: heartbeat.sequence, sinceMs: nowMs)
        if let fence, !distrusted, fence.freshest > heartbeat.sequence, nowMs - fence.freshestSinceMs <= config.sequenceTrustMs {
            freshest = (fence.freshest, fence.freshestSinceMs)
        }
        fences[sender] = SequenceFence(
            directSinceMs: nowMs, freshest: freshest.sequence, freshestSinceMs: freshest.sinceMs, undercut: nil)
        contacts[heartbeat.address] = nil
        if heartbeat.status == .primary { settlePrimaryClaim(of: sender) }
        guard let previous else { return .joined(member) }
        let changed = (previous.status, previous.epoch, previous.priority, previous.service)
            != (member.status, member.epoch, member.priority, member.service)
        return .updated(electionInputsChanged: changed)
    }

    /// Keeps at most one primary per service and epoch in the record: a claim with a lower epoch
    /// than another primary's is stale (fenced) and is recorded as standby until it says so itself.
    private mutating func settlePrimaryClaim(of claimant: NodeID) {
        guard let claim = members[claimant] else { return }
        var newestEpoch = claim.epoch
        if status == .primary && config.service == claim.service { newestEpoch = max(newestEpoch, epoch) }
        for other in members.values where other.service == claim.service && other.status == .primary {
            newestEpoch = max(newestEpoch, other.epoch)
        }
        for other in members.values
        where other.service == claim.service && other.status == .primary && other.epoch < newestEpoch {
            members[other.id]!.status = .standby
        }
    }

    /// The sequence fence's rule: a heartbeat numbered at or below `fence` (taken at `fencedAtMs`)
    /// is stale, unless the fence is older than `sequenceTrustMs` and the sender has since been
    /// heard counting up below it, an interval or more apart (`undercut`, the first such heartbeat,
    /// recorded here). Duplicates and reordering (milliseconds, one datagram at a time) never meet
    /// that; a live member whose real sequence is below a forged one meets it within a few intervals.
    func overturns(
        _ sequence: UInt64, fence: UInt64, fencedAtMs: Int64, undercut: inout Undercut?, nowMs: Int64
    ) -> Bool {
        guard sequence < fence else { return false }
        guard let first = undercut else {
            undercut = Undercut(sequence: sequence, atMs: nowMs)
            return false
        }
        return nowMs - fencedAtMs > config.sequenceTrustMs && sequence > first.sequence
            && nowMs - first.atMs >= config.intervalMs
    }

    mutating func removeMember(
        _ memberID: NodeID, sequence: UInt64, reason: MembershipDirective.DepartureReason, nowMs: Int64
    ) -> [MembershipDirective] {
        let fence = fences.removeValue(forKey: memberID)
        // The highest number known fences its older heartbeats, from when it was taken.
        var last = (sequence: sequence, sinceMs: nowMs)
        if let fence, fence.freshest >= sequence { last = (fence.freshest, fence.freshestSinceMs) }
        if let earlier = departed[memberID], earlier.sequence > last.sequence { last = (earlier.sequence, earlier.fencedSinceMs) }
        departed[memberID] = Departure(
            sequence: last.sequence, atMs: nowMs, fencedSinceMs: last.sinceMs,
            undercut: fence?.undercut ?? departed[memberID]?.undercut)
        guard let member = members.removeValue(forKey: memberID) else { return [] }
        if reason == .timedOut && contacts.count < config.maxContacts {
            // Keep probing it: if this was a partition rather than a crash, the two sides find each other again.
            contacts[member.address] = Contact(kind: .departed, sinceMs: nowMs)
        }
        return [.memberLeft(member, reason: reason)]
    }

    mutating func expireSilentMembers(nowMs: Int64) -> [MembershipDirective] {
        let silent = members.values
            .filter { nowMs - $0.lastHeardMs > config.suspectAfterMs }
            .map(\.id)
            .sorted()
        return silent.flatMap { removeMember($0, sequence: 0, reason: .timedOut, nowMs: nowMs) }
    }

    /// Relayed news: refreshes the liveness of known members and adds unknown addresses to probe.
    mutating func learn(from gossip: [Heartbeat.Gossip], nowMs: Int64) {
        for entry in gossip where entry.id != id {
            if members[entry.id] != nil {
                if let fence = fences[entry.id], entry.sequence > fence.freshest {
                    fences[entry.id]!.freshest = entry.sequence
                    fences[entry.id]!.freshestSinceMs = nowMs
                    members[entry.id]!.lastHeardMs = nowMs
                }
                continue
            }
            if let gone = departed[entry.id], entry.sequence <= gone.sequence { continue }
            guard entry.address != config.address else { continue }
            if let known = contacts[entry.address] {
                if known.kind == .departed { contacts[entry.address] = Contact(kind: .relayed, sinceMs: nowMs) }
            } else if contacts.count < config.maxContacts {
                contacts[entry.address] = Contact(kind: .relayed, sinceMs: nowMs)
            }
        }
    }

    mutating func forgetOldContacts(nowMs: Int64) {
        let horizon = nowMs - config.forgetAfterMs
        contacts = contacts.filter { $0.value.kind == .seed || $0.value.sinceMs >= horizon }
        departed = departed.filter { $0.value.atMs >= horizon }
    }
}
