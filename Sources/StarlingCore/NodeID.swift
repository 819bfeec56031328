/// A process's self-assigned identity (docs/HANDBOOK.md, "identity"): 128 bits, the admission
/// time in milliseconds since the Unix epoch in the high 48 bits and random bits below, like a UUIDv7.
///
/// Never derived from PID, host name or MAC. Smaller values are older, and older ranks higher.
public struct NodeID: Hashable, Comparable, Sendable {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Assigns an identity at admission from the wall-clock time and a seeded generator.
    public init<R: RandomNumberGenerator>(admittedAtUnixMs unixMs: UInt64, using rng: inout R) {
        let timeBits = (unixMs & 0xFFFF_FFFF_FFFF) << 16
        self.init(high: timeBits | UInt64.random(in: 0...0xFFFF, using: &rng), low: rng.next())
    }

    /// The admission time carried in the high bits.
    public var admittedAtUnixMs: UInt64 { high >> 16 }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// Parses the 32-hex-digit form, with or without UUID dashes.
    public init?(_ text: some StringProtocol) {
        let digits = String(text.filter { $0 != "-" })
        guard digits.count == 32, digits.allSatisfy(\.isHexDigit), let high = UInt64(digits.prefix(16), radix: 16),
              let low = UInt64(digits.suffix(16), radix: 16) else { return nil }
        self.init(high: high, low: low)
    }
}

extension NodeID: CustomStringConvertible {
    /// The UUID-style form, e.g. `0192f3a4-5b6c-7d8e-9f00-112233445566`.
    public var description: String {
        let hex = Self.hex(high) + Self.hex(low)
        let parts = [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)].map { start, end in
            hex.dropFirst(start).prefix(end - start)
        }
        return parts.joined(separator: "-")
    }

    /// The last eight hex digits: random bits, so they tell apart processes admitted together.
    public var short: String { String(Self.hex(low).suffix(8)) }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
