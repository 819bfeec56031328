/// A job on its way between processes: everything a primary or executor needs to run it and to
/// send the outcome back.
public struct JobTicket: Hashable, Sendable {
    public var service: ServiceName
    /// The client's idempotency key; `(service, key)` names the job cluster-wide.
    public var key: JobKey
    /// The entry node: where the outcome must end up (its TCP address).
    public var entry: NodeAddress
    public var payload: [UInt8]

    public init(service: ServiceName, key: JobKey, entry: NodeAddress, payload: [UInt8]) {
        self.service = service
        self.key = key
        self.entry = entry
        self.payload = payload
    }
}

/// One frame between two Starling processes on a peer TCP connection (the job plane; heartbeats
/// travel over UDP). Encoded by `PeerMessageCodec`.
public enum PeerMessage: Hashable, Sendable {
    /// The first frame on a connection: who is speaking, so answers can be matched to members.
    case hello(sender: NodeID, address: NodeAddress)
    /// Entry node → primary: queue this job.
    case forward(JobTicket)
    /// Primary → executor: run this job; `epoch` is the primary's fencing token.
    case dispatch(epoch: UInt64, ticket: JobTicket)
    /// Executor → primary, then primary → entry node: the job ran, here is its outcome.
    case result(epoch: UInt64, service: ServiceName, key: JobKey, outcome: JobOutcome)
    /// Primary → entry node: the job was not accepted and will not run (`ERR` for the client).
    case refused(service: ServiceName, key: JobKey, code: ClientErrorCode, message: String)
    /// Executor → primary: the dispatch was not taken (stale epoch, draining, full); the primary
    /// must place the job elsewhere.
    case declined(epoch: UInt64, service: ServiceName, key: JobKey, reason: String)
    /// Executor → a primary it has just learned of: the keys it is still running, so a new
    /// primary attaches resubmitted jobs to them rather than running them twice.
    case running(epoch: UInt64, service: ServiceName, keys: [JobKey])
    /// Primary → executor: under this epoch it holds exactly these key shards of the service
    /// (docs/HANDBOOK.md, "Key shards"); a set smaller than the last one takes shards back. The
    /// executor answers every lease with `released`.
    case lease(epoch: UInt64, service: ServiceName, shards: KeyShardSet)
    /// Executor → primary, the answer to a `lease`: it now holds `holding` and runs no key of
    /// another shard that a client submits to it; `running` are the keys of other shards it still
    /// runs or holds, which the primary sends there if they are submitted again.
    case released(epoch: UInt64, service: ServiceName, holding: KeyShardSet, running: [JobKey])
    /// Scaler → agent: start one worker of this service type on your host.
    case spawn(service: ServiceName, reason: String)
    /// Scaler → worker: drain and stop (scaling down).
    case retire(reason: String)
    /// Agent → scaler: the `spawn` it asked for was not carried out (why, for the log); the scaler
    /// places the next one elsewhere.
    case spawnRefused(service: ServiceName, reason: String)
}
