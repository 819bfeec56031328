/// A process's status in its service type (docs/HANDBOOK.md, "status").
public enum MemberStatus: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Being admitted: collecting heartbeats during the discovery window; never elected.
    case joining = 0
    case standby = 1
    /// Ranked highest while another process is primary; becomes primary once that one steps down.
    case toBecomePrimary = 2
    case primary = 3

    /// The wire and JSON name: `joining`, `standby`, `to-become-primary`, `primary`.
    public var description: String {
        switch self {
        case .joining: "joining"
        case .standby: "standby"
        case .toBecomePrimary: "to-become-primary"
        case .primary: "primary"
        }
    }

    public init?(name: String) {
        guard let status = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = status
    }

    /// Whether this status claims the primary role, now or after a handover.
    public var claimsPrimary: Bool { self == .primary || self == .toBecomePrimary }
}
