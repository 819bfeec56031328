/// What the scaler remembers of one service type between ticks: its own requests still on their
/// way, the demand timers, and the workers it has seen.
struct ScalerServiceState: Sendable {
    struct Spawn: Hashable, Sendable {
        var agent: NodeAddress
        var requestedAtMs: Int64
    }

    /// Spawns requested and not yet seen in the record, oldest first.
    var spawns: [Spawn] = []
    /// Workers asked to retire that have not yet announced their drain, with the request time.
    var retiring: [NodeID: Int64] = [:]
    /// Every worker of the service seen recently, with when it was last seen.
    var seen: [NodeID: Int64] = [:]
    /// Agents whose spawn for this service failed or timed out, with when.
    var failedAgents: [NodeAddress: Int64] = [:]
    var highSinceMs: Int64?
    var lowSinceMs: Int64?
    /// The last scale event: a spawn requested or seen, a retirement requested.
    var lastScaleMs: Int64?

    /// Brings the requests up to date with the record: a new worker settles a spawn (preferably one
    /// on an agent of its host), a spawn whose agent is gone or that timed out is given up, a
    /// retirement is settled once the worker drains or is gone, or given up after the timeout.
    mutating func observe(_ present: [Member], agents: Set<NodeAddress>, nowMs: Int64, config: ScalerConfig) {
        for member in present where seen[member.id] == nil {
            let index = spawns.firstIndex { $0.agent.host == member.address.host } ?? spawns.indices.first
            if let index {
                spawns.remove(at: index)
                lastScaleMs = nowMs
            }
        }
        for member in present { seen[member.id] = nowMs }
        seen = seen.filter { nowMs - $0.value <= config.forgetMembersAfterMs }

        for spawn in spawns where !agents.contains(spawn.agent) || nowMs - spawn.requestedAtMs >= config.spawnTimeoutMs {
            failedAgents[spawn.agent] = nowMs
        }
        spawns.removeAll { !agents.contains($0.agent) || nowMs - $0.requestedAtMs >= config.spawnTimeoutMs }
        failedAgents = failedAgents.filter { nowMs - $0.value < config.spawnFailureMemoryMs }

        let byID = Dictionary(present.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        retiring = retiring.filter { id, requestedAtMs in
            guard let member = byID[id], !member.leaving else { return false }
            return nowMs - requestedAtMs < config.retireTimeoutMs
        }
    }

    /// The oldest spawn for this agent is given up (the agent reported it could not start it).
    mutating func spawnFailed(on agent: NodeAddress, nowMs: Int64) {
        failedAgents[agent] = nowMs
        if let index = spawns.firstIndex(where: { $0.agent == agent }) { spawns.remove(at: index) }
    }
}
