import StarlingCore

extension JobPlane {
    /// The answer to `SHARDS` (docs/PROTOCOL.md, "Key shards"): this process's service type and
    /// the shards of it the process holds a lease on now. An agent's service runs no jobs, so it
    /// holds none whatever its engine says.
    var shardsAnswer: ClientResponse {
        let service = engine.service
        return .shards(service: service, shards: service == .agent ? .none : engine.leasedShards)
    }
}
