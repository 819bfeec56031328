/// One entry of the dashboard's event timeline (docs/HANDBOOK.md, "event timeline"): something
/// this process saw happen to the cluster, stamped with the wall clock for display.
struct ClusterEvent: Encodable, Equatable, Sendable {
    enum Kind: String, Encodable, Sendable {
        /// A member entered this record.
        case joined
        /// A member left it by the failure timeout.
        case died
        /// A member left it saying goodbye (a drain).
        case left
        /// A service's primary changed to another member; `durationMs` says how long it took.
        case failover
        /// This process changed status.
        case status
        /// The scaler on this agent decided (`spawn`, `retire`) or was refused (`spawn_refused`).
        case scaler
    }

    /// Wall-clock time (Unix ms) when this process saw it.
    var atUnixMs: UInt64
    var kind: Kind
    /// The service it concerns.
    var service: String
    /// The member it concerns, by id, when there is one.
    var member: String?
    /// What happened, in words; may quote a peer (a refusal's reason), so it is bounded by
    /// `EventTimeline` and never trusted by the page.
    var detail: String
    /// Failovers: from when the old primary was last heard to when the new one was seen.
    var durationMs: Int64?

    private enum CodingKeys: String, CodingKey {
        case kind, service, member, detail
        case atUnixMs = "at_unix_ms"
        case durationMs = "duration_ms"
    }
}
