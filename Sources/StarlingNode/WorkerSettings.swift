import StarlingCore

/// What an operator chooses for one worker process (`starling worker` flags), before binding.
public struct WorkerSettings: Sendable, Equatable {
    public var service: ServiceName
    /// The host to bind and advertise (a numeric address: peers must reach it as written).
    public var host: NodeAddress.Host
    /// UDP heartbeats and TCP clients share it; 0 takes a free port.
    public var port: UInt16
    /// `--join`: numeric seeds go to the core as they are; host names are resolved by the worker,
    /// again every announce round (`SeedResolver`).
    public var joins: [JoinTarget]
    public var intervalMs: Int64
    /// nil: the core's default (three intervals plus a jitter allowance).
    public var suspectAfterMs: Int64?
    public var priority: Int32
    /// The cap on accepted TCP connections and their idle timeouts.
    public var connections: ConnectionLimits
    /// Bytes queued for a slow client before its requests stop being read.
    public var maxClientBacklogBytes: Int
    /// How long a SIGTERM drain waits for held jobs before stopping anyway.
    public var drainTimeoutMs: Int64 = 30_000
    /// The process that started this one (an agent, for the workers it spawns): once this process
    /// is no longer its child (the parent died, even by SIGKILL), it drains and stops, so that no
    /// worker outlives its agent unmanaged. nil: it lives on its own.
    public var parentPID: Int32?
    /// `--http`: where the operator's endpoints listen (README, "HTTP"); nil serves none.
    public var httpAddress: NodeAddress?
    public var httpLimits = HTTPLimits()
    /// `--cluster-key-file`, an absolute path: nil leaves the cluster open (docs/SECURITY.md).
    public var clusterKeyFile: String?
    /// `--client-token-file`, an absolute path: nil lets any client submit (docs/PROTOCOL.md).
    public var clientTokenFile: String?

    public init(
        service: ServiceName, host: NodeAddress.Host = .ipv4(0x7F00_0001), port: UInt16 = 0,
        joins: [JoinTarget] = [], intervalMs: Int64 = 100, suspectAfterMs: Int64? = nil, priority: Int32 = 0,
        connections: ConnectionLimits = ConnectionLimits(), maxClientBacklogBytes: Int = 1 << 20
    ) {
        self.service = service
        self.host = host
        self.port = port
        self.joins = joins
        self.intervalMs = intervalMs
        self.suspectAfterMs = suspectAfterMs
        self.priority = priority
        self.connections = connections
        self.maxClientBacklogBytes = maxClientBacklogBytes
    }

    /// The membership settings once the real address is known.
    public func membershipConfig(address: NodeAddress) -> MembershipConfig {
        MembershipConfig(
            service: service, priority: priority, address: address, seeds: joins.compactMap { $0.address },
            intervalMs: intervalMs, suspectAfterMs: suspectAfterMs)
    }

    /// Checks everything that can be checked before binding; the message names the setting at fault.
    public func validate() throws(MembershipConfigError) {
        // The address is a placeholder: only timing and bounds are checked here.
        try membershipConfig(address: NodeAddress(host: host, port: port)).validate()
        try connections.validate()
        guard maxClientBacklogBytes >= 4096 else {
            throw .invalid("a client's backlog must allow at least 4 KiB, got \(maxClientBacklogBytes)")
        }
        guard (0...3_600_000).contains(drainTimeoutMs) else {
            throw .invalid("the drain timeout must be 0–3600000 ms, got \(drainTimeoutMs)")
        }
        if let parentPID, parentPID <= 1 {
            throw .invalid("the parent pid must be a process id above 1, got \(parentPID)")
        }
    }
}
