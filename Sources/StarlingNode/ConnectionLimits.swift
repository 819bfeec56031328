#if canImport(Glibc)
import Glibc
#endif
import StarlingCore

/// The bounds on the TCP connections a process accepts (docs/PROTOCOL.md, "Connections"): one cap
/// over every accepted socket — clients, inbound peer links and connections whose protocol is not
/// known yet — and the idle timeouts that keep silent connections from holding it; and how long
/// its own peer links may stall.
public struct ConnectionLimits: Sendable, Equatable {
    /// Accepted sockets open at once; one more is answered `ERR - BUSY too many connections` and
    /// closed. The default leaves a reserve below the process's descriptor limit for what it opens
    /// itself (`defaultMaxConnections`).
    public var maxConnections: Int
    /// How long a new connection may take to send the first bytes that name its protocol.
    public var routeTimeoutMs: Int64
    /// How long a client connection with no job in flight may go without completing a request,
    /// counted from its opening or its last answer. A client waiting for a job is never idle.
    public var clientIdleTimeoutMs: Int64
    /// How long data sent on a peer link may go unacknowledged before the link is closed and
    /// made again (`TCP_USER_TIMEOUT`). The default, 1.5 s, is five retransmissions at the links'
    /// 50 ms minimum RTO (`PeerLinks.minimumRetransmitUs`): a lossy but live link survives it, a
    /// stalled one does not wait for retransmission timeouts that back off to tens of seconds.
    public var peerStallTimeoutMs: Int64

    public static let defaultRouteTimeoutMs: Int64 = 10_000
    public static let defaultClientIdleTimeoutMs: Int64 = 60_000
    public static let defaultPeerStallTimeoutMs: Int64 = 1_500
    /// The highest cap accepted: far more than one loop serves well, and bounded so that no input
    /// makes arithmetic on it overflow.
    public static let maxMaxConnections = 1 << 20

    public init(
        maxConnections: Int = ConnectionLimits.defaultMaxConnections(),
        routeTimeoutMs: Int64 = ConnectionLimits.defaultRouteTimeoutMs,
        clientIdleTimeoutMs: Int64 = ConnectionLimits.defaultClientIdleTimeoutMs,
        peerStallTimeoutMs: Int64 = ConnectionLimits.defaultPeerStallTimeoutMs
    ) {
        self.maxConnections = maxConnections
        self.routeTimeoutMs = routeTimeoutMs
        self.clientIdleTimeoutMs = clientIdleTimeoutMs
        self.peerStallTimeoutMs = peerStallTimeoutMs
    }

    /// The process's soft `RLIMIT_NOFILE` (what `open` and `accept` fail at with `EMFILE`).
    public static func descriptorLimit() -> Int {
        var limit = rlimit()
        // RLIM_INFINITY is the largest rlim_t: clamping makes it "no limit of its own".
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return maxMaxConnections
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Descriptors kept for what the process opens itself: outbound peer links (one a peer), the
    /// UDP socket, the pipes of job commands and spawned workers, the loop's own, log files, the
    /// reserve that answers connections at `EMFILE`. An eighth of the limit, 64 to 1,024.
    public static func descriptorReserve(forLimit limit: Int) -> Int {
        min(1024, max(64, limit / 8))
    }

    /// The soft descriptor limit minus `descriptorReserve` (at least 1, at most `maxMaxConnections`):
    /// 896 with the common limit of 1,024, 18,976 with 20,000.
    public static func defaultMaxConnections(descriptorLimit limit: Int = descriptorLimit()) -> Int {
        min(maxMaxConnections, max(1, limit - descriptorReserve(forLimit: limit)))
    }

    /// Checks the bounds; the message names the flag at fault.
    public func validate() throws(MembershipConfigError) {
        guard (1...Self.maxMaxConnections).contains(maxConnections) else {
            throw .invalid("--max-connections must be 1–\(Self.maxMaxConnections), got \(maxConnections)")
        }
        guard (10...3_600_000).contains(routeTimeoutMs) else {
            throw .invalid("--route-timeout must be 10–3600000 ms, got \(routeTimeoutMs)")
        }
        guard (10...86_400_000).contains(clientIdleTimeoutMs) else {
            throw .invalid("--client-idle-timeout must be 10–86400000 ms, got \(clientIdleTimeoutMs)")
        }
        guard (200...600_000).contains(peerStallTimeoutMs) else {
            throw .invalid(
                "--peer-stall-timeout must be 200–600000 ms (below Linux's 200 ms minimum retransmission "
                    + "timeout a healthy link would be cut), got \(peerStallTimeoutMs)")
        }
    }

    /// The `starling worker` flags that set these limits: an agent hands its own to its workers.
    public var arguments: [String] {
        ["--max-connections", "\(maxConnections)", "--route-timeout", "\(routeTimeoutMs)",
         "--client-idle-timeout", "\(clientIdleTimeoutMs)", "--peer-stall-timeout", "\(peerStallTimeoutMs)"]
    }
}
