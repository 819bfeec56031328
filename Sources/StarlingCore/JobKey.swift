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
        let utf8 = value.utf8
        if utf8.isEmpty { throw .empty }
        // Every allowed character is one ASCII byte, so checking bytes is enough; only a key that
        // fails goes through its characters, to name the first bad one.
        let clean = utf8.withContiguousStorageIfAvailable { $0.allSatisfy(Self.isAllowed) }
            ?? utf8.allSatisfy(Self.isAllowed)
        if !clean {
            for c in value {
                guard let ascii = c.asciiValue, c.utf8.count == 1, Self.isAllowed(ascii) else { throw .badCharacter(c) }
            }
        }
        guard utf8.count <= Self.maxLength else { throw .tooLong(utf8.count) }
        self.value = value
    }

    /// A key read from the wire. The bytes are checked as bytes; only a key that fails is decoded
    /// as text, to throw exactly what `init(_:)` throws for it (bytes that are not UTF-8 are a bad
    /// character U+FFFD).
    public init(bytes: ArraySlice<UInt8>) throws(Invalid) {
        guard !bytes.isEmpty, bytes.count <= Self.maxLength, bytes.allSatisfy(Self.isAllowed) else {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw .badCharacter("\u{FFFD}") }
            self = try JobKey(text)
            return
        }
        value = String(decoding: bytes, as: UTF8.self)
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

    /// The key's bytes, without the terminator `String` adds: a key is ASCII, so equal keys have
    /// equal bytes, and jobs are looked up by key several times each.
    public func hash(into hasher: inout Hasher) {
        let hashed: Void? = value.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil { hasher.combine(value) }
    }

    public var description: String { value }
    public static func < (lhs: JobKey, rhs: JobKey) -> Bool { lhs.value < rhs.value }
}
