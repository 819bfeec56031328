/// Admission and election per service type (docs/HANDBOOK.md, "Membership").
extension Membership {
    /// The order used to pick a primary: operator priority, then the older identity.
    struct Rank: Comparable {
        var priority: Int32
        var id: NodeID

        init(priority: Int32, id: NodeID) {
            self.priority = priority
            self.id = id
        }

        init(_ member: Member) { self.init(priority: member.priority, id: member.id) }

        static func < (lhs: Rank, rhs: Rank) -> Bool {
            lhs.priority != rhs.priority ? lhs.priority < rhs.priority : lhs.id > rhs.id
        }
    }

    var rank: Rank { Rank(priority: config.priority, id: id) }

    /// A newcomer is admitted once its discovery window has passed, every address it learned has
    /// answered, and no higher-ranked process of its service is still joining; each wait is bounded.
    mutating func admitIfReady(nowMs: Int64) -> [MembershipDirective] {
        let elapsed = nowMs - startedMs
        guard elapsed >= config.discoveryWindowMs else { return [] }
        // Unanswered: a learned address, or a hub of this service known only from gossip. A
        // newcomer elects only once its service's primary and highest epoch are first-hand news.
        let topology = currentTopology(nowMs: nowMs)
        let hubsUnheard = topology.hubs[config.service, default: []].contains {
            $0.id != id && !heardWhileJoining.contains($0.id)
        }
        let unanswered = hubsUnheard || contacts.values.contains { $0.kind == .seed || $0.kind == .relayed }
        if unanswered && elapsed < config.maxDiscoveryMs { return [] }
        let higherJoining = members.values.contains {
            $0.service == config.service && $0.status == .joining && Rank($0) > rank
        }
        if higherJoining && elapsed < config.maxStaggerMs { return [] }
        admittedMs = nowMs
        heardWhileJoining = []
        let admitted = change(to: .standby, reason: "admitted after \(elapsed) ms knowing \(members.count) members")
        return [admitted] + elect(nowMs: nowMs)
    }

    /// Runs this process's part of the election on its own record. Status changes only by one step
    /// at a time; a successor takes over only after the primary is heard as stepped down or gone.
    mutating func elect(nowMs: Int64) -> [MembershipDirective] {
        guard status != .joining, !isLeaving, !isDraining else { return [] }
        let peers = members.values.filter { $0.service == config.service && $0.status != .joining && !$0.leaving }
        let isHighest = peers.allSatisfy { Rank($0) < rank }
        let primaries = peers.filter { $0.status == .primary }.sorted { $0.id < $1.id }
        let successors = peers.filter { $0.status == .toBecomePrimary }.sorted { $0.id < $1.id }
        // Status decides ties: only a strictly higher operator priority preempts a sitting primary.
        let outranksPrimaries = primaries.allSatisfy { $0.priority < config.priority }

        switch status {
        case .joining:
            return []
        case .standby:
            guard isHighest else { return [] }
            if primaries.isEmpty && successors.isEmpty {
                return [becomePrimary(reason: "highest-ranked and no primary")]
            }
            guard outranksPrimaries else { return [] }
            let incumbent = primaries.first.map { "primary \($0.id.short)" } ?? "successor \(successors[0].id.short)"
            return [change(to: .toBecomePrimary, reason: "outranks \(incumbent)")]
        case .toBecomePrimary:
            guard isHighest, outranksPrimaries else {
                return [change(to: .standby, reason: "yields to a higher-ranked member")]
            }
            guard primaries.isEmpty else { return [] }
            return [becomePrimary(reason: "the previous primary stepped down")]
        case .primary:
            let mine = (epoch, rank)
            if let winner = primaries.first(where: { ($0.epoch, Rank($0)) > mine }) {
                return [change(to: .standby, reason: "primary \(winner.id.short) holds epoch \(winner.epoch)")]
            }
            let newest = highestEpoch[config.service, default: 0]
            if newest > epoch {
                // Someone took a newer epoch, and its primary is not (or no longer) in this record:
                // it may have been dropped from it while alive. Executors that saw that epoch decline
                // this one's dispatches, so it steps down; the highest-ranked then takes a fresh epoch
                // above it, itself again if nobody else claims the role.
                return [change(to: .standby, reason: "epoch \(newest) was taken while this process held \(epoch)")]
            }
            if let successor = successors.first(where: { $0.priority > config.priority }) {
                return [change(to: .standby, reason: "hands over to \(successor.id.short)")]
            }
            if let loser = primaries.first(where: { $0.epoch >= epoch }) {
                // Two primaries met (a healed partition) and we won: take a fresh epoch so the
                // other's dispatches are fenced off everywhere.
                takeNewEpoch()
                return [.statusChanged(from: .primary, to: .primary, epoch: epoch,
                                       reason: "fences primary \(loser.id.short) at epoch \(loser.epoch)")]
            }
            return []
        }
    }

    mutating func becomePrimary(reason: String) -> MembershipDirective {
        takeNewEpoch()
        return change(to: .primary, reason: reason)
    }

    /// An epoch of `service` heard first-hand or in relays: it stays the floor for elections after
    /// the member that carried it is gone, since executors keep it as their fence (docs/HANDBOOK.md,
    /// "epoch").
    mutating func learnEpoch(_ heard: UInt64, of service: ServiceName) {
        guard heard > highestEpoch[service, default: 0] else { return }
        highestEpoch[service] = heard
        recordVersion &+= 1
    }

    private mutating func takeNewEpoch() {
        // Saturating: a heartbeat may carry any epoch, and the top of the range is no reason to trap.
        let newest = max(epoch, highestEpoch[config.service, default: 0])
        epoch = newest == .max ? newest : newest + 1
        highestEpoch[config.service] = epoch
        recordVersion &+= 1
    }

    mutating func change(to newStatus: MemberStatus, reason: String) -> MembershipDirective {
        let old = status
        status = newStatus
        recordVersion &+= 1
        return .statusChanged(from: old, to: newStatus, epoch: announcedEpoch, reason: reason)
    }
}
