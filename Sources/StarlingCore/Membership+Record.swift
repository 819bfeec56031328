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
        // Overturning, the first heartbeat below the fence is vouched for by this one; rising, the
        // recorded number is, if an interval or more old.
        var vouched: UInt64 = 0
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
                vouched = undercut?.sequence ?? 0
            } else if let fence {
                vouched = nowMs - fence.directSinceMs >= config.intervalMs ? previous.sequence : fence.vouched
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
                vouched = gone.undercut?.sequence ?? 0
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
        if status == .joining && heardWhileJoining.count < config.maxMembers { heardWhileJoining.insert(sender) }
        if previous.map({ Self.viewDiffers($0, member) }) ?? true { recordVersion &+= 1 }
        // Relayed news fresher than its own heartbeat stands for `sequenceTrustMs` at most: the
        // member's own heartbeats coming in lower after that prove it wrong.
        var freshest = (sequence: heartbeat.sequence, sinceMs: nowMs)
        if let fence, !distrusted, fence.freshest > heartbeat.sequence, nowMs - fence.freshestSinceMs <= config.sequenceTrustMs {
            freshest = (fence.freshest, fence.freshestSinceMs)
        }
        fences[sender] = SequenceFence(
            directSinceMs: nowMs, freshest: freshest.sequence, freshestSinceMs: freshest.sinceMs, undercut: nil,
            vouched: vouched)
        contacts[heartbeat.address] = nil
        // A claim already settled at this epoch needs settling again only against this process's
        // own (which may have grown since); walking the record for every primary's heartbeat was
        // a standby's largest cost in receiving it.
        if heartbeat.status == .primary,
           previous?.status != .primary || previous?.epoch != heartbeat.epoch
            || (status == .primary && config.service == heartbeat.service) {
            settlePrimaryClaim(of: sender)
        }
        guard let previous else {
            rotate(sender)
            spread(sender, urgent: heartbeat.status.claimsPrimary)
            return .joined(member)
        }
        let changed = (previous.status, previous.epoch, previous.priority, previous.service)
            != (member.status, member.epoch, member.priority, member.service)
        if changed || previous.leaving != member.leaving || previous.address != member.address {
            spread(sender, urgent: Self.isUrgent(previous, member))
        }
        return .updated(electionInputsChanged: changed)
    }

    /// Keeps at most one primary per service and epoch in the record: a claim with a lower epoch
    /// than another primary's is stale (fenced) and is recorded as standby until it says so itself.
    /// A change every record needs within a few intervals: a claim to primary made or given up,
    /// a new primary epoch, a member draining or back. Relayed on at once, `newsRepeats` times.
    static func isUrgent(_ before: Member, _ after: Member) -> Bool {
        before.status.claimsPrimary != after.status.claimsPrimary || before.leaving != after.leaving
            || (after.status == .primary && before.epoch != after.epoch) || before.address != after.address
    }

    /// Whether `JobView` could read the two apart.
    static func viewDiffers(_ a: Member, _ b: Member) -> Bool {
        (a.status, a.epoch, a.priority, a.address, a.leaving) != (b.status, b.epoch, b.priority, b.address, b.leaving)
            || (a.workload.capacity, a.workload.jobTimeoutMs, a.service) != (b.workload.capacity, b.workload.jobTimeoutMs, b.service)
    }

    mutating func settlePrimaryClaim(of claimant: NodeID) {
        guard let claim = members[claimant] else { return }
        var newestEpoch = claim.epoch
        if status == .primary && config.service == claim.service { newestEpoch = max(newestEpoch, epoch) }
        for other in members.values where other.service == claim.service && other.status == .primary {
            newestEpoch = max(newestEpoch, other.epoch)
        }
        for other in members.values
        where other.service == claim.service && other.status == .primary && other.epoch < newestEpoch {
            members[other.id]!.status = .standby
            recordVersion &+= 1
        }
    }

    /// The sequence fence's rule: a heartbeat numbered at or below `fence` (taken at `fencedAtMs`)
    /// is stale, unless the fence is older than `sequenceTrustMs` and the sender has since been
    /// heard counting up below it, an interval or more apart (`undercut`, the first such heartbeat,
    /// recorded here, or a lower one heard an interval or more after it).
    /// Duplicates and reordering (milliseconds, one datagram at a time) never meet
    /// that; a live member whose real sequence is below a forged one meets it within a few intervals.
    func overturns(
        _ sequence: UInt64, fence: UInt64, fencedAtMs: Int64, undercut: inout Undercut?, nowMs: Int64
    ) -> Bool {
        guard sequence < fence else { return false }
        guard let first = undercut else {
            undercut = Undercut(sequence: sequence, atMs: nowMs)
            return false
        }
        if sequence < first.sequence {
            // The count starts again lower when that comes an interval or more after the first:
            // a forged number below a forged fence, heard first, must not stand above the member's
            // real count for good, while a late or reordered datagram comes milliseconds after its
            // neighbours and restarts nothing.
            if nowMs - first.atMs >= config.intervalMs { undercut = Undercut(sequence: sequence, atMs: nowMs) }
            return false
        }
        return nowMs - fencedAtMs > config.sequenceTrustMs
            && first.isCountedUpFrom(by: sequence, atMs: nowMs, intervalMs: config.intervalMs)
    }

    /// Drops a member: it timed out here (`detected`: its address is probed, so a partition heals),
    /// said `leaving` (`saidGoodbye`, one of this service: its address is probed while this
    /// process is a hub), was reported dead, or went unrefreshed as second-hand. Unless `quietly`,
    /// its departure is news (docs/HANDBOOK.md, "gossip").
    mutating func removeMember(
        _ memberID: NodeID, sequence: UInt64, reason: MembershipDirective.DepartureReason, nowMs: Int64,
        detected: Bool = false, quietly: Bool = false, saidGoodbye: Bool = false, timedOutHere: Bool = false
    ) -> [MembershipDirective] {
        let fence = fences.removeValue(forKey: memberID)
        let member = members.removeValue(forKey: memberID)
        expected[memberID] = nil
        // The highest number known fences its older heartbeats, from when it was taken.
        var last = (sequence: sequence, sinceMs: nowMs)
        if let fence, fence.freshest >= sequence { last = (fence.freshest, fence.freshestSinceMs) }
        let earlier = departed[memberID]
        if let earlier, earlier.sequence > last.sequence { last = (earlier.sequence, earlier.fencedSinceMs) }
        // News says the last number of its own regular heartbeats known here: a `leaving` or
        // relayed number above it (which one hop could forge) goes no further than this record.
        let announced = member.map { min($0.sequence, last.sequence) } ?? min(sequence, last.sequence)
        let announcing = max(announced, earlier?.announced ?? 0)
        // Its relays must top only a number it was heard counting up from (`vouched`): one that a
        // heartbeat alone gave, forged and sent straight here, must not keep them out
        // (docs/HANDBOOK.md, "sequence fence"). One already departed keeps its earlier floor.
        let vouched = member != nil ? min(fence?.vouched ?? 0, announced) : (earlier?.vouched ?? announced)
        departed[memberID] = Departure(
            sequence: last.sequence, announced: announcing,
            vouched: min(max(vouched, earlier?.vouched ?? 0), announcing),
            address: member?.address ?? earlier?.address, atMs: nowMs, fencedSinceMs: last.sinceMs,
            undercut: fence?.undercut ?? earlier?.undercut, timedOutHere: earlier?.timedOutHere ?? false)
        guard let member else { return [] }
        recordVersion &+= 1
        if !quietly { spread(memberID, urgent: true) }
        if config.seeds.contains(member.address) || resolvedSeeds.contains(member.address) {
            // A `--join` seed is announced to again, as before it answered, for as long as this
            // process runs: however long a partition lasts, the sides find each other again.
            contacts[member.address] = Contact(kind: .seed, sinceMs: nowMs)
        } else if detected && contacts.count < config.maxContacts {
            // Keep probing it: if this was a partition rather than a crash, the two sides find
            // each other again (for `forgetAfterMs`).
            contacts[member.address] = Contact(kind: .departed, sinceMs: nowMs)
        } else if saidGoodbye && contacts.count < config.maxContacts {
            contacts[member.address] = Contact(kind: .left, sinceMs: nowMs)
        }
        // Back only by its own heartbeat if its address is asked for one (`heartbeatToAll`): with
        // the contacts full, its relays must still take a live member back.
        if timedOutHere, contacts[member.address]?.kind.asksForAnswer == true {
            departed[memberID]!.timedOutHere = true
        }
        return [.memberLeft(member, reason: reason)]
    }

    /// A member expected to heartbeat this process (`expected`) that is silent, directly and in
    /// gossip, past suspect-after is dead: dropped, probed, and its death is news. A second-hand
    /// one unrefreshed past `secondHandExpiryMs` is dropped quietly.
    mutating func expireSilentMembers(nowMs: Int64) -> [MembershipDirective] {
        var dead: [NodeID] = []
        var stale: [NodeID] = []
        for (memberID, since) in expected {
            guard let member = members[memberID] else { continue }
            if nowMs - max(member.lastHeardMs, since) > config.suspectAfterMs { dead.append(memberID) }
        }
        // Second-hand expiry is 200 intervals: a sweep of the whole record every 10 ticks will do.
        if tickCount % 10 == 0 {
            for member in members.values where expected[member.id] == nil && nowMs - member.lastHeardMs > config.secondHandExpiryMs {
                stale.append(member.id)
            }
        }
        var out: [MembershipDirective] = []
        for memberID in dead.sorted() {
            out += removeMember(memberID, sequence: 0, reason: .timedOut, nowMs: nowMs, detected: true, timedOutHere: true)
        }
        for memberID in stale.sorted() {
            out += removeMember(memberID, sequence: 0, reason: .timedOut, nowMs: nowMs, quietly: true)
        }
        return out
    }

    /// Relayed news (docs/HANDBOOK.md, "gossip"): refreshes the liveness of members; enters
    /// members this process does not hear itself (second-hand) with the state the relayer knew,
    /// and takes a second-hand member's new state; drops members reported dead. What changed here
    /// is news here too, relayed on. `electionInputsChanged` when a member of this service moved.
    mutating func learn(
        from gossip: [Heartbeat.Gossip], nowMs: Int64
    ) -> (electionInputsChanged: Bool, directives: [MembershipDirective]) {
        var changed = false
        var out: [MembershipDirective] = []
        var askNow: [NodeAddress] = []
        // A `suspect` entry is a request to check the member (`takeVouchRequests`), not news of it.
        for entry in gossip where entry.id != id && !entry.flags.contains(.suspect) {
            if entry.flags.contains(.dead) {
                if let gone = learnDeparture(entry, nowMs: nowMs) {
                    out += gone
                    changed = true
                }
                continue
            }
            if let member = members[entry.id] {
                changed = refresh(member, from: entry, nowMs: nowMs) || changed
                continue
            }
            guard let state = entry.state, entry.address != config.address else { continue }
            // Timed out here: back only by its own heartbeat, which its departed contact's probes
            // ask for (SWIM's rule; simulation seed 12117). A relay above the number it was timed
            // out with says it sent heartbeats since (a partition healing), so it is asked at once
            // rather than at the next round of contact probes, up to `probeEveryTicks` away.
            if departed[entry.id]?.timedOutHere == true {
                if let address = addressToAskAtOnce(relayed: entry, nowMs: nowMs) { askNow.append(address) }
                continue
            }
            var vouched: UInt64 = 0
            if var gone = departed[entry.id], entry.sequence > gone.sequence {
                // Above its departure's number: it counts only rising again an interval later
                // (`Departure.relayedAbove`), or the last answer a dying member gave one joiner
                // would bring it straight back into every record that had dropped it.
                guard let first = gone.relayedAbove,
                      first.isCountedUpFrom(by: entry.sequence, atMs: nowMs, intervalMs: config.intervalMs) else {
                    if gone.relayedAbove == nil { gone.relayedAbove = Undercut(sequence: entry.sequence, atMs: nowMs) }
                    departed[entry.id] = gone
                    continue
                }
            } else if var gone = departed[entry.id] {
                // Relays below a departure's number: a forged `leaving` (or a wrong number) must
                // not keep a live member out of records that hear it only second-hand. Relayed
                // numbers above the last one it was heard counting up from here (`vouched`, never
                // a number one forged heartbeat gave), counting up an interval apart after
                // `sequenceTrustMs`, take it back, as its own heartbeats would (docs/HANDBOOK.md,
                // "sequence fence"). A dead member's relays stop counting.
                guard entry.sequence > gone.vouched,
                      overturns(entry.sequence, fence: gone.sequence, fencedAtMs: gone.fencedSinceMs,
                                undercut: &gone.undercut, nowMs: nowMs)
                else {
                    departed[entry.id] = gone
                    continue
                }
                vouched = gone.undercut?.sequence ?? 0
            }
            learnEpoch(state.epoch, of: state.service)
            guard members.count < config.maxMembers else { continue }
            departed[entry.id] = nil
            let member = Member(
                id: entry.id, service: state.service, status: state.status, priority: state.priority,
                epoch: state.epoch, workload: state.workload, address: entry.address, lastHeardMs: nowMs,
                sequence: entry.sequence, leaving: entry.flags.contains(.draining))
            members[entry.id] = member
            recordVersion &+= 1
            fences[entry.id] = SequenceFence(
                directSinceMs: nowMs, freshest: entry.sequence, freshestSinceMs: nowMs, undercut: nil, vouched: vouched)
            if contacts[entry.address]?.kind != .seed { contacts[entry.address] = nil }
            rotate(entry.id)
            if state.status.claimsPrimary { spread(entry.id, urgent: true) }
            if state.status == .primary { settlePrimaryClaim(of: entry.id) }
            out.append(.memberJoined(member))
            changed = changed || state.service == config.service
        }
        if !askNow.isEmpty { out.append(.send(makeProbe(nowMs: nowMs, isAnswer: true), to: askNow.sorted())) }
        return (changed, out)
    }

    /// The address of a member timed out here to ask at once, if `entry` relays it above the
    /// number it was timed out with and it was not asked so within the last interval.
    private mutating func addressToAskAtOnce(relayed entry: Heartbeat.Gossip, nowMs: Int64) -> NodeAddress? {
        guard mayAskForAnswers, var gone = departed[entry.id], entry.sequence > gone.sequence, let address = gone.address,
              gone.askedAtMs.map({ nowMs - $0 >= config.intervalMs }) ?? true
        else { return nil }
        gone.askedAtMs = nowMs
        departed[entry.id] = gone
        return address
    }

    /// Gossip about a member in the record. One this process expects to hear itself only has its
    /// freshness taken (`SequenceFence.freshest`, trusted for `sequenceTrustMs`); a second-hand one
    /// takes the relayed sequence and state, and a relayed number below a wrongly high one in the
    /// record is taken back by the sequence fence's rule (`overturns`).
    private mutating func refresh(_ member: Member, from entry: Heartbeat.Gossip, nowMs: Int64) -> Bool {
        guard let fence = fences[entry.id] else { return false }
        // Relayed above the recorded number an interval or more after it was taken: that number
        // is vouched for (its departure's relays must top it, `Departure.vouched`). Not the same
        // number again: one relayer repeats a forged number it took every interval.
        let vouches = entry.sequence > member.sequence && nowMs - fence.directSinceMs >= config.intervalMs
        if expected[entry.id] != nil {
            if vouches { fences[entry.id]!.vouched = member.sequence }
            if entry.sequence > fence.freshest {
                fences[entry.id]!.freshest = entry.sequence
                fences[entry.id]!.freshestSinceMs = nowMs
                members[entry.id]!.lastHeardMs = nowMs
            }
            return false
        }
        var overturned = false
        if let refused = fence.refused, entry.sequence == refused { return false }
        var vouched = vouches ? member.sequence : fence.vouched
        if entry.sequence <= member.sequence {
            // Relays lag one another, so a lower number is normal news; only a recorded number that
            // nobody has topped for suspect-after (a forged one) gives way, by the fence's rule.
            guard nowMs - fence.directSinceMs > config.suspectAfterMs else { return false }
            var undercut = fence.undercut
            overturned = overturns(entry.sequence, fence: member.sequence, fencedAtMs: fence.directSinceMs,
                                   undercut: &undercut, nowMs: nowMs)
            fences[entry.id]!.undercut = undercut
            guard overturned else { return false }
            // The first relay below it, topped by this one an interval or more later.
            vouched = undercut?.sequence ?? 0
        }
        fences[entry.id] = SequenceFence(
            directSinceMs: nowMs, freshest: entry.sequence, freshestSinceMs: nowMs, undercut: nil,
            vouched: vouched, refused: overturned ? member.sequence : fence.refused)
        var updated = member
        updated.sequence = entry.sequence
        updated.lastHeardMs = nowMs
        guard let state = entry.state, state.service == member.service else {
            members[entry.id] = updated
            return false
        }
        learnEpoch(state.epoch, of: state.service)
        updated.status = state.status
        updated.priority = state.priority
        updated.epoch = state.epoch
        updated.workload = state.workload
        updated.address = entry.address
        updated.leaving = entry.flags.contains(.draining)
        members[entry.id] = updated
        if Self.viewDiffers(member, updated) { recordVersion &+= 1 }
        let moved = (member.status, member.epoch, member.priority) != (updated.status, updated.epoch, updated.priority)
        // Only what routing and elections wait for is relayed on at once; the rest travels in the rotation.
        if !overturned && Self.isUrgent(member, updated) { spread(entry.id, urgent: true) }
        if updated.status == .primary && moved { settlePrimaryClaim(of: entry.id) }
        return (moved || member.leaving != updated.leaving) && member.service == config.service
    }

    /// A member reported dead or gone, with the last sequence its reporter knew. One this process
    /// expects is timed out here, by its own sources, and no report drops it: a standby that hears
    /// its primary from one source and lost it falsely must not make the deputy, which hears it from
    /// every member of its service, take over (docs/HANDBOOK.md, "Loss"). One it knows of a newer
    /// sequence than the report is alive too. Otherwise it is dropped, and the news goes on (nil:
    /// nothing changed in the record).
    private mutating func learnDeparture(_ entry: Heartbeat.Gossip, nowMs: Int64) -> [MembershipDirective]? {
        guard let member = members[entry.id] else {
            // Not in the record: remember the report, so stale relays do not bring it back.
            if let gone = departed[entry.id] {
                if entry.sequence > gone.sequence { departed[entry.id]!.sequence = entry.sequence }
            } else if departed.count < config.maxMembers {
                departed[entry.id] = Departure(
                    sequence: entry.sequence, announced: entry.sequence, vouched: entry.sequence,
                    address: entry.address, atMs: nowMs,
                    fencedSinceMs: nowMs, undercut: nil)
            }
            return nil
        }
        // A newer number here is evidence against the news only if heard within suspect-after, the
        // silence its detector waited for. One heard longer ago may be an answer or a probe sent
        // to this process alone just before the member died: kept, it would stay for
        // `secondHandExpiryMs`, and its relays would bring the dead member back elsewhere.
        guard entry.sequence >= member.sequence || nowMs - member.lastHeardMs > config.suspectAfterMs else { return nil }
        guard expected[entry.id] == nil else { return nil }
        // One of its service is probed as if this process had timed it out itself: whoever
        // restarts at that address finds this process there, even when its seeds restarted with
        // it (docs/HANDBOOK.md, "departed contact").
        return removeMember(entry.id, sequence: entry.sequence, reason: .timedOut, nowMs: nowMs,
                            detected: member.service == config.service)
    }

    mutating func forgetOldContacts(nowMs: Int64) {
        let horizon = nowMs - config.forgetAfterMs
        contacts = contacts.filter { $0.value.kind == .seed || $0.value.sinceMs >= horizon }
        departed = departed.filter { $0.value.atMs >= horizon }
    }
}
