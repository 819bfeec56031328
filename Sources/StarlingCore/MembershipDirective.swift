/// What the membership state machine asks its shell to do or to report.
public enum MembershipDirective: Equatable, Sendable {
    /// Send this heartbeat to each of these addresses.
    case send(Heartbeat, to: [NodeAddress])
    /// This process changed status (log it with the epoch).
    case statusChanged(from: MemberStatus, to: MemberStatus, epoch: UInt64, reason: String)
    /// A member entered the record.
    case memberJoined(Member)
    /// A member left the record.
    case memberLeft(Member, reason: DepartureReason)
    /// A heartbeat was well-formed but not taken (counted and logged by the shell).
    case ignored(reason: String, from: NodeAddress)

    public enum DepartureReason: String, Sendable {
        /// Not heard of, directly or through others, for the failure timeout.
        case timedOut = "timed out"
        /// Said goodbye (graceful stop).
        case left = "left"
    }
}
