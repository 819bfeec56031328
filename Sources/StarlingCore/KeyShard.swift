/// The 64 shards of a service's key space (docs/HANDBOOK.md, "Key shards"): the unit a primary
/// leases to its executors, so that a key submitted at the executor that holds its shard runs
/// there without crossing the primary.
public enum KeyShard {
    public static let count = 64

    /// The shard of a key's bytes: FNV-1a (64-bit) of them, modulo 64. Stable across processes
    /// and versions, and written down in docs/PROTOCOL.md ("Key shards") so that clients can
    /// choose keys in a node's shards.
    public static func of(_ bytes: some Sequence<UInt8>) -> Int {
        of(hash: hash(bytes))
    }

    /// The shard of a key whose FNV-1a hash is `hash`.
    public static func of(hash: UInt64) -> Int { Int(hash % UInt64(count)) }

    /// FNV-1a (64-bit) of `bytes`, continued from `hash` (the offset basis for a whole key), so
    /// a client trying many keys with one prefix hashes the prefix once.
    public static func hash(_ bytes: some Sequence<UInt8>, from hash: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var hash = hash
        for byte in bytes { hash = step(hash, byte) }
        return hash
    }

    /// One byte of FNV-1a.
    @inline(__always)
    public static func step(_ hash: UInt64, _ byte: UInt8) -> UInt64 { (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
}

extension JobKey {
    /// The key's shard (`KeyShard.of`).
    public var shard: Int { KeyShard.of(value.utf8) }
}

/// A set of key shards, one bit each (bit `i` is shard `i`).
public struct KeyShardSet: Hashable, Sendable, CustomStringConvertible {
    public var bits: UInt64

    public init(bits: UInt64 = 0) { self.bits = bits }

    public static let none = KeyShardSet()
    public static let all = KeyShardSet(bits: .max)

    public var isEmpty: Bool { bits == 0 }
    public var count: Int { bits.nonzeroBitCount }
    public func contains(_ shard: Int) -> Bool { bits & (1 << UInt64(shard)) != 0 }
    public mutating func insert(_ shard: Int) { bits |= 1 << UInt64(shard) }
    public mutating func remove(_ shard: Int) { bits &= ~(1 << UInt64(shard)) }

    public func union(_ other: KeyShardSet) -> KeyShardSet { KeyShardSet(bits: bits | other.bits) }
    public func intersection(_ other: KeyShardSet) -> KeyShardSet { KeyShardSet(bits: bits & other.bits) }
    public func subtracting(_ other: KeyShardSet) -> KeyShardSet { KeyShardSet(bits: bits & ~other.bits) }

    /// The shards in ascending order.
    public var shards: [Int] { (0..<KeyShard.count).filter(contains) }

    /// 16 lowercase hexadecimal digits, shard 63 first: the form of docs/PROTOCOL.md's `SHARDS`.
    public var hex: String {
        let digits = String(bits, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Reads `hex`'s form: exactly 16 hexadecimal digits.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 16, hex.utf8.allSatisfy({ $0 < 128 && Character(Unicode.Scalar($0)).isHexDigit }),
              let bits = UInt64(hex, radix: 16) else { return nil }
        self.bits = bits
    }

    public var description: String { hex }
}
