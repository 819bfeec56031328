/// The agents (`starling up`) as the scaler sees them in one tick: where a new worker may go.
struct ScalerAgents: Sendable {
    /// Free worker slots per agent that is not leaving: capacity − running − spawns on their way there.
    private(set) var headroom: [NodeAddress: Int] = [:]
    /// Agents in the record, leaving or not.
    let present: Set<NodeAddress>

    init(agents: [Member], spawnsInFlight: [NodeAddress]) {
        present = Set(agents.map(\.address))
        for agent in agents where !agent.leaving {
            headroom[agent.address] = Int(agent.workload.capacity) - Int(agent.workload.running)
        }
        for address in spawnsInFlight where headroom[address] != nil { headroom[address]! -= 1 }
    }

    /// The agent with the most headroom (ties: the lower address); agents that recently failed a
    /// spawn come last whatever their headroom. Takes one slot of it.
    mutating func take(avoiding failed: [NodeAddress: Int64]) -> NodeAddress? {
        let open = headroom.filter { $0.value > 0 }
        let best = open.min { a, b in
            let (aFailed, bFailed) = (failed[a.key] != nil, failed[b.key] != nil)
            if aFailed != bFailed { return !aFailed }
            if a.value != b.value { return a.value > b.value }
            return a.key < b.key
        }
        guard let best else { return nil }
        headroom[best.key]! -= 1
        return best.key
    }

    /// Why `take` found nothing, for the service's `blocked` report.
    var noHeadroomReason: String {
        if headroom.isEmpty {
            return present.isEmpty ? "no agent in the record" : "no agent that is not leaving"
        }
        return "no agent with headroom (\(headroom.count) agents, every worker slot taken)"
    }
}
