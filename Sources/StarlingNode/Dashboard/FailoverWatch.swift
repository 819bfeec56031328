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
struct FailoverWatch {
    private struct Seen {
        var primary: NodeID
        /// When the primary was last heard of (monotonic ms), while it was primary here.
        var lastHeardMs: Int64
    }

    /// Services remembered beyond those in the record.
    static let maxRemembered = 1_024

    private var seen: [ServiceName: Seen] = [:]

    /// Reads this record's primaries at `nowMs`; the failovers since the last call.
    mutating func follow(_ membership: Membership, nowMs: Int64) -> [Failover] {
        var failovers: [Failover] = []
        let services = Set(membership.members.values.map(\.service)).union([membership.config.service])
        for service in services {
            guard let primary = membership.primary(of: service, nowMs: nowMs) else { continue }
            // Its own entry is heard now; a peer's when its news last came.
            let heardMs = primary.id == membership.id ? nowMs : primary.lastHeardMs
            if let previous = seen[service], previous.primary != primary.id {
                failovers.append(Failover(
                    service: service, from: previous.primary, to: primary.id, epoch: primary.epoch,
                    durationMs: max(0, nowMs - previous.lastHeardMs)))
            }
            seen[service] = Seen(primary: primary.id, lastHeardMs: heardMs)
        }
        // A service whose members all went is remembered, so its next primary (a replacement the
        // scaler started) counts as a failover too; past the bound, only the record's are kept.
        if seen.count > Self.maxRemembered { seen = seen.filter { services.contains($0.key) } }
        return failovers
    }
}
