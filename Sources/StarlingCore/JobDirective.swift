/// A job cluster-wide: the service type and the client's idempotency key.
public struct JobID: Hashable, Sendable, CustomStringConvertible {
    public var service: ServiceName
    public var key: JobKey

    public init(service: ServiceName, key: JobKey) {
        self.service = service
        self.key = key
    }

    public var description: String { "\(service.value)/\(key.value)" }
}

/// A client connection as the shell numbers it; the core only passes it back.
public typealias ClientID = UInt64

/// What the job path (`JobEngine`, and the parts it composes) asks its shell to do.
public enum JobDirective: Hashable, Sendable {
    /// Write this answer to this client connection.
    case answer(ClientID, ClientResponse)
    /// Send this frame to the process at this address (possibly this process itself).
    case send(PeerMessage, to: NodeAddress)
    /// Start the service's handler on this job, dispatched under `epoch`; report its outcome with
    /// `JobEngine.finished`.
    case run(JobTicket, epoch: UInt64)
}
