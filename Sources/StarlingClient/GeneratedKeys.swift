import StarlingCore
import Synchronization

/// The numbers of a client's calls and the keys of its jobs submitted without one: a random
/// prefix, then the call's number in base 36. The counter only grows, so keys stay unique per
/// client.
///
/// While the node the client is connected to holds key shards of the job's service (its last
/// `SHARDS` answer, docs/PROTOCOL.md "Key shards"), the counter skips ahead to the first number
/// whose key falls in one of them, so that the job runs at that node without crossing its primary.
/// Numbers skipped are never used.
final class GeneratedKeys: Sendable {
    /// `prefixLength` letters and digits (about 59.5 bits), unique across clients. Up to number
    /// 36⁵ (60 million; skipped numbers count) a key is at most 15 bytes, which a `String` holds
    /// inline: every table a job crosses hashes and compares it without reaching for the heap
    /// (docs/HANDBOOK.md, "job key").
    let prefix: String
    static let prefixLength = 10
    /// Numbers tried for one key before the plain one is taken: the set is never empty, so a key
    /// in it turns up after 64/count tries on average, and even a single shard is missed by all
    /// 4,096 only with odds of about e⁻⁶⁴.
    static let maxSkips: UInt64 = 4_096

    /// FNV-1a (`KeyShard.of`) of the prefix: a candidate's shard costs only its own digits.
    private let prefixHash: UInt64
    private let counter = Atomic<UInt64>(1)
    /// The connected node's last `SHARDS` answer; nil while there is none.
    private let node = Mutex<(service: ServiceName, shards: KeyShardSet)?>(nil)

    init() {
        let alphanumerics = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        prefix = String((0..<Self.prefixLength).map { _ in alphanumerics.randomElement()! })
        prefixHash = KeyShard.hash(prefix.utf8)
    }

    // MARK: - The node's shards (from the loop thread)

    /// The connected node answered `SHARDS`.
    func nodeHolds(_ shards: KeyShardSet, of service: ServiceName) {
        node.withLock { $0 = (service, shards) }
    }

    /// No shards known: the connection is gone, or the node cannot tell them.
    func forgetNode() {
        node.withLock { $0 = nil }
    }

    // MARK: - Numbers and keys (from any thread)

    /// A call's number, for a call that needs no key.
    func nextNumber() -> UInt64 {
        counter.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// A job's number, whose key (`key(number:)`) is in the node's shards when the node holds
    /// some of `service`.
    func nextNumber(for service: ServiceName) -> UInt64 {
        let shards = node.withLock { node -> KeyShardSet in
            guard let node, node.service == service else { return .none }
            return node.shards
        }
        guard !shards.isEmpty else { return nextNumber() }
        var expected = counter.load(ordering: .relaxed)
        while true {
            let chosen = firstNumber(from: expected, in: shards) ?? expected
            let (exchanged, original) = counter.compareExchange(
                expected: expected, desired: chosen &+ 1, ordering: .relaxed)
            if exchanged { return chosen }
            expected = original
        }
    }

    /// The key of a job numbered `number`.
    func key(number: UInt64) -> String {
        prefix + String(number, radix: 36)
    }

    /// The first number from `start` on, within `maxSkips`, whose key is in `shards`. The key's
    /// last digit is the only one that changes over 36 numbers in a row: the hash up to it is
    /// computed once for them.
    private func firstNumber(from start: UInt64, in shards: KeyShardSet) -> UInt64? {
        let (sum, overflow) = start.addingReportingOverflow(Self.maxSkips)
        let end = overflow ? UInt64.max : sum
        var candidate = start
        while candidate < end {
            let high = candidate / 36
            let stem = high == 0 ? prefixHash : KeyShard.hash(String(high, radix: 36).utf8, from: prefixHash)
            var lastDigit = candidate % 36
            while lastDigit < 36, candidate < end {
                if shards.contains(KeyShard.of(hash: KeyShard.step(stem, Self.base36Digit(lastDigit)))) { return candidate }
                lastDigit += 1
                candidate += 1
            }
        }
        return nil
    }

    /// The ASCII of a digit as `String(_:radix: 36)` writes it: `0-9`, then `a-z`.
    private static func base36Digit(_ value: UInt64) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + UInt8(value) : UInt8(ascii: "a") + UInt8(value - 10)
    }
}
