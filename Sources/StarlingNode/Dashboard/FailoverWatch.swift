import StarlingCore

/// A change of a service's primary to another member, as one record saw it, with how long the
/// service went without a live primary.
struct Failover: Equatable, Sendable {
    var service: ServiceName
    var from: NodeID
    var to: NodeID
    /// The new primary's epoch.
    var epoch: UInt64
    /// From when the old primary was last heard as primary to the tick that saw the new one; a
    /// bound of the outage one interval coarse (the record is read each interval).
    var durationMs: Int64
}

/// Follows each service's primary in this record, tick by tick, and reports when it changes to
/// another member (docs/METRICS.md, `starling_failovers_total`; docs/HANDBOOK.md, "event timeline").
/// While a primary is seen, the last time it was heard is kept: a primary killed at once is only
/// dropped from the record after `suspect-after`, and the outage began at its last heartbeat, not
/// there. Bounded: one entry per service, and those the record no longer holds go past `maxRemembered`. Loop-confined.
///
/// Which member is a service's primary can only change with the record (`Membership.recordVersion`
/// moves with every status, epoch, member and departure); between changes a tick looks up each
/// primary's last heartbeat by its identity instead of walking the record once per service.
struct FailoverWatch {
    private struct Seen {
        var primary: NodeID
        /// When the primary was last heard of (monotonic ms), while it was primary here.
        var lastHeardMs: Int64
    }

    /// Services remembered beyond those in the record.
    static let maxRemembered = 1_024

    private var seen: [ServiceName: Seen] = [:]
    /// The record's version at the last full pass, and the services it held.
    private var followedVersion: UInt64?
    private(set) var services: Set<ServiceName> = []

    /// Reads this record's primaries at `nowMs`; the failovers since the last call.
    mutating func follow(_ membership: Membership, nowMs: Int64) -> [Failover] {
        guard followedVersion != membership.recordVersion else {
            for service in services { refreshLastHeard(of: service, in: membership, nowMs: nowMs) }
            return []
        }
        followedVersion = membership.recordVersion
        var failovers: [Failover] = []
        services = Set(membership.members.values.map(\.service)).union([membership.config.service])
        for service in services {
            guard let primary = membership.primary(of: service, nowMs: nowMs) else { continue }
            if let previous = seen[service], previous.primary != primary.id {
                failovers.append(Failover(
                    service: service, from: previous.primary, to: primary.id, epoch: primary.epoch,
                    durationMs: max(0, nowMs - previous.lastHeardMs)))
            }
            seen[service] = Seen(primary: primary.id, lastHeardMs: Self.heardMs(of: primary, in: membership, nowMs: nowMs))
        }
        // A service whose members all went is remembered, so its next primary (a replacement the
        // scaler started) counts as a failover too; past the bound, only the record's are kept.
        if seen.count > Self.maxRemembered { seen = seen.filter { services.contains($0.key) } }
        return failovers
    }

    private mutating func refreshLastHeard(of service: ServiceName, in membership: Membership, nowMs: Int64) {
        guard let primary = seen[service]?.primary else { return }
        if primary == membership.id {
            seen[service]!.lastHeardMs = nowMs
        } else if let member = membership.members[primary] {
            seen[service]!.lastHeardMs = member.lastHeardMs
        }
    }

    /// Its own entry is heard now; a peer's when its news last came.
    private static func heardMs(of primary: Member, in membership: Membership, nowMs: Int64) -> Int64 {
        primary.id == membership.id ? nowMs : primary.lastHeardMs
    }
}
