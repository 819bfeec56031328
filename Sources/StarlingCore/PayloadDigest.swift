/// What a job's key is bound to: a digest of its service and payload, so that a key submitted
/// again with another payload is refused instead of answered with the first payload's outcome
/// (docs/PROTOCOL.md, "Idempotency keys").
///
/// A 64-bit SipHash (Swift's `Hasher`) with this process's seed: digests are compared only within
/// the process that made them, never sent. An accidental match is a 2⁻⁶⁴ chance, and a client
/// cannot aim for one without the seed.
public struct PayloadDigest: Hashable, Sendable {
    private let value: Int

    init(service: ServiceName, payload: [UInt8]) {
        var hasher = Hasher()
        hasher.combine(service)
        hasher.combine(payload.count)
        payload.withUnsafeBytes { hasher.combine(bytes: $0) }
        value = hasher.finalize()
    }

    /// The answer to a key submitted again with another payload.
    public static let conflictMessage = "key already used with a different payload"
}
