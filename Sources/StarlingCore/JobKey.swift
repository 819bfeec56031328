/// A client's idempotency key for a job: 1–64 characters of `A-Za-z0-9._:-`.
///
/// A key already in flight attaches to that job, and a key answered recently gets the same answer
/// again, so the key — not the connection — names the job end to end.
public struct JobKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let maxLength = 64

    public let value: String

    public enum Invalid: Error, Hashable, Sendable, CustomStringConvertible {
        case empty
        case tooLong(Int)
        case badCharacter(Character)

        public var description: String {
            switch self {
            case .empty: "job key is empty"
            case .tooLong(let count): "job key has \(count) characters, at most \(JobKey.maxLength) allowed"
            case .badCharacter(let c):
                "job key has '\(c.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())': use A-Z, a-z, 0-9, '.', '_', ':', '-'"
            }
        }
    }

    public init(_ value: String) throws(Invalid) {
        if value.isEmpty { throw .empty }
        for c in value {
            guard let ascii = c.asciiValue, c.utf8.count == 1, Self.isAllowed(ascii) else { throw .badCharacter(c) }
        }
        guard value.utf8.count <= Self.maxLength else { throw .tooLong(value.utf8.count) }
        self.value = value
    }

    /// Whether `byte` may appear in a key: `A-Z`, `a-z`, `0-9`, `.`, `_`, `:`, `-`.
    public static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    public var description: String { value }
    public static func < (lhs: JobKey, rhs: JobKey) -> Bool { lhs.value < rhs.value }
}
