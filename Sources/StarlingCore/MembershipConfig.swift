/// The settings of one process's membership: who it is, whom it joins, and its timing.
public struct MembershipConfig: Sendable, Equatable {
    public var service: ServiceName
    public var priority: Int32
    /// The address other processes reach this one at.
    public var address: NodeAddress
    /// Processes to announce ourselves to at admission (`--join`).
    public var seeds: [NodeAddress]
    /// How often heartbeats go out.
    public var intervalMs: Int64
    /// A member not heard of for this long is removed from the record (its failure is assumed).
    public var suspectAfterMs: Int64
    /// A second-hand member (one this process does not expect heartbeats from, docs/HANDBOOK.md,
    /// "hub") that no gossip has refreshed for this long leaves the record quietly. Its death
    /// normally arrives as news within a few intervals; this is the backstop.
    public var secondHandExpiryMs: Int64
    /// How long a newcomer collects answers before it may take part in elections.
    public var discoveryWindowMs: Int64
    /// A newcomer is admitted by then even if some learned addresses never answered.
    public var maxDiscoveryMs: Int64
    /// A newcomer waits for concurrently joining, higher-ranked processes of its service for at most this long.
    public var maxStaggerMs: Int64
    /// After admission, addresses that are not live members (seeds, departed members) are probed every this many intervals, so partitions heal.
    public var probeEveryTicks: Int
    /// Departed members' addresses are probed every interval for this long after they went silent
    /// (a healing partition reconnects within an interval), then every `probeEveryTicks`.
    public var fastProbeMs: Int64
    /// Departed members' addresses are probed, and their identities remembered, for this long.
    public var forgetAfterMs: Int64
    /// How long a sequence number in the record (a member's, or its departure's) fences out lower
    /// ones unconditionally; after that, a member heard counting up below it is taken back with
    /// its own numbers (docs/HANDBOOK.md, "Membership", "sequence fence"). Reordering takes
    /// milliseconds; a wrongly high number, forged or corrupt, would otherwise lock a live member out.
    public var sequenceTrustMs: Int64
    /// How many members a deputy asks to check a hub of its service it has not heard itself for
    /// `probeAfterSilenceMs` (indirect probes, docs/HANDBOOK.md, "indirect probe"); 0 turns them off.
    public var indirectProbeHelpers: Int
    /// Silence (a member not heard itself) after which an expected member is probed, and the
    /// deputy asks others to check a silent hub: early enough that two rounds go out before
    /// suspect-after whatever the ticks' phase (docs/HANDBOOK.md, "Loss"), never under 1.5
    /// intervals, which a healthy member's heartbeats never leave. 150 ms at the defaults.
    public var probeAfterSilenceMs: Int64 {
        max(intervalMs * 3 / 2, min(2 * intervalMs, suspectAfterMs - 2 * intervalMs))
    }

    /// Bounds on the record and the probe list, whatever the network says.
    public var maxMembers: Int
    public var maxContacts: Int

    public static let intervalRangeMs: ClosedRange<Int64> = 10...60_000

    public init(
        service: ServiceName, priority: Int32 = 0, address: NodeAddress, seeds: [NodeAddress] = [],
        intervalMs: Int64 = 100, suspectAfterMs: Int64? = nil
    ) {
        self.service = service
        self.priority = priority
        self.address = address
        self.seeds = seeds
        self.intervalMs = intervalMs
        // Three missed intervals plus an allowance for scheduling jitter, as VRRP's Master_Down_Interval.
        self.suspectAfterMs = suspectAfterMs ?? (3 * intervalMs + max(50, intervalMs / 2))
        self.secondHandExpiryMs = max(200 * intervalMs, 4 * self.suspectAfterMs)
        self.discoveryWindowMs = 3 * intervalMs
        self.maxDiscoveryMs = 10 * intervalMs
        self.maxStaggerMs = 20 * intervalMs
        self.probeEveryTicks = 5
        self.fastProbeMs = 10_000
        self.forgetAfterMs = 300_000
        self.sequenceTrustMs = 2 * intervalMs
        self.indirectProbeHelpers = 3
        self.maxMembers = 1024
        self.maxContacts = 1024
    }

    /// Checks the settings hang together; the message names the setting at fault.
    public func validate() throws(MembershipConfigError) {
        guard Self.intervalRangeMs.contains(intervalMs) else {
            throw .invalid("interval must be \(Self.intervalRangeMs.lowerBound)–\(Self.intervalRangeMs.upperBound) ms, got \(intervalMs)")
        }
        guard suspectAfterMs >= 2 * intervalMs else {
            throw .invalid("suspect-after (\(suspectAfterMs) ms) must be at least two intervals (\(2 * intervalMs) ms)")
        }
        guard suspectAfterMs <= 3_600_000 else { throw .invalid("suspect-after must be at most one hour") }
        guard secondHandExpiryMs >= suspectAfterMs else {
            throw .invalid("second-hand expiry (\(secondHandExpiryMs) ms) must be at least suspect-after (\(suspectAfterMs) ms)")
        }
        guard discoveryWindowMs >= 0, maxDiscoveryMs >= discoveryWindowMs, maxStaggerMs >= 0 else {
            throw .invalid("discovery window bounds are inconsistent")
        }
        guard sequenceTrustMs >= 0, sequenceTrustMs <= suspectAfterMs else {
            throw .invalid("sequence trust (\(sequenceTrustMs) ms) must be 0 ms to suspect-after (\(suspectAfterMs) ms)")
        }
        guard (0...16).contains(indirectProbeHelpers) else {
            throw .invalid("indirect probe helpers must be 0–16, got \(indirectProbeHelpers)")
        }
        guard probeEveryTicks >= 1, forgetAfterMs >= suspectAfterMs, maxMembers >= 1, maxContacts >= seeds.count else {
            throw .invalid("probe/forget/size bounds are inconsistent")
        }
    }
}

public enum MembershipConfigError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let why): why }
    }
}
