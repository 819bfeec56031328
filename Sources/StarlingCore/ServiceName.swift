/// The name of a service type: 1–64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit. Validated wherever it comes from outside (flags, heartbeats, TOML).
public struct ServiceName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let maxLength = 64
    /// The reserved service type of host agents (`starling up`).
    public static let agent = ServiceName(unchecked: "agent")

    public let value: String

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case empty
        case tooLong(Int)
        case badCharacter(Character)

        public var description: String {
            switch self {
            case .empty: "service name is empty"
            case .tooLong(let count): "service name has \(count) characters, at most \(ServiceName.maxLength) allowed"
            case .badCharacter(let c): "service name has '\(c)': use a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            }
        }
    }

    public init(_ value: String) throws(Invalid) {
        guard let first = value.first else { throw .empty }
        guard value.utf8.count <= Self.maxLength else { throw .tooLong(value.utf8.count) }
        for c in value where !Self.isAllowed(c) { throw .badCharacter(c) }
        guard first != ".", first != "_", first != "-" else { throw .badCharacter(first) }
        self.value = value
    }

    private init(unchecked value: String) { self.value = value }

    private static func isAllowed(_ c: Character) -> Bool {
        guard c.isASCII, let ascii = c.asciiValue else { return false }
        switch ascii {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): return true
        default: return false
        }
    }

    public var description: String { value }
    public static func < (lhs: ServiceName, rhs: ServiceName) -> Bool { lhs.value < rhs.value }
}
