import DequeModule

/// Outcomes of recently finished jobs, so that a key submitted again gets the same answer without
/// running again — if it comes with the same payload (`PayloadDigest`). Bounded in count, in bytes
/// of results and in time; the oldest go first. One per process: `JobEngine` lends it to the
/// entry node, the router and the executor, which each remember what they see and recall from all
/// of it (docs/HANDBOOK.md, "recent outcomes").
public struct RecentOutcomes: Sendable {
    /// What is known of a key submitted again.
    public enum Recall: Equatable, Sendable {
        /// It ran with this payload: the same answer again.
        case answered(JobOutcome)
        /// It ran with another payload: the submission is refused (`PayloadDigest.conflictMessage`).
        case otherPayload
    }

    /// The default bound on the bytes of results kept by one cache.
    public static let defaultMaxBytes = 32 << 20

    public let capacity: Int
    public let maxBytes: Int
    public let ttlMs: Int64
    private var outcomes: [JobID: (outcome: JobOutcome, digest: PayloadDigest)] = [:]
    private var order: Deque<(id: JobID, expiresMs: Int64)> = []
    private var bytes = 0

    public init(capacity: Int, ttlMs: Int64, maxBytes: Int = defaultMaxBytes) {
        self.capacity = max(1, capacity)
        self.maxBytes = max(0, maxBytes)
        self.ttlMs = ttlMs
    }

    public var count: Int { outcomes.count }

    /// What is known of `id` submitted again with `payload`; nil if nothing is (the payload is
    /// digested only then).
    public func recall(_ id: JobID, payload: [UInt8]) -> Recall? {
        guard let known = outcomes[id] else { return nil }
        return known.digest == PayloadDigest(service: id.service, payload: payload) ? .answered(known.outcome) : .otherPayload
    }

    /// Keeps `outcome` of the job `id` ran with `payload`, dropping the oldest entries while over
    /// a bound. A result larger than the byte bound is not kept: a key submitted again then runs
    /// again.
    public mutating func remember(_ outcome: JobOutcome, for id: JobID, payload: [UInt8], nowMs: Int64) {
        let size = outcome.byteCount
        guard size <= maxBytes else { return }
        if outcomes.capacity < capacity {
            // All the room at once, on first use: growing by doubling would rehash every entry
            // kept, tens of thousands, in one step, a stall of milliseconds for every job on the
            // loop at the time (issue 13, the p99.9 tail). Untouched storage costs no memory.
            outcomes.reserveCapacity(capacity)
            order.reserveCapacity(capacity)
        }
        // The first outcome kept stands: an engine's roles each remember the outcomes they see,
        // so a key is often known already. One lookup either way, and no digest for a known key.
        guard Self.keepFirst(outcome, payload: payload, of: id, in: &outcomes[id]) else { return }
        bytes += size
        order.append((id, nowMs + ttlMs))
        while order.count > capacity || bytes > maxBytes, let oldest = order.popFirst() {
            dropOldest(oldest.id)
        }
    }

    public mutating func expire(nowMs: Int64) {
        while let oldest = order.first, oldest.expiresMs <= nowMs {
            order.removeFirst()
            dropOldest(oldest.id)
        }
    }

    /// Fills `slot` (the table's entry for `id`) if it is empty; whether it did.
    private static func keepFirst(
        _ outcome: JobOutcome, payload: [UInt8], of id: JobID, in slot: inout (outcome: JobOutcome, digest: PayloadDigest)?
    ) -> Bool {
        guard slot == nil else { return false }
        slot = (outcome, PayloadDigest(service: id.service, payload: payload))
        return true
    }

    private mutating func dropOldest(_ id: JobID) {
        if let known = outcomes.removeValue(forKey: id) { bytes -= known.outcome.byteCount }
    }
}

extension JobOutcome {
    /// Bytes of result or failure text.
    var byteCount: Int {
        switch self {
        case .succeeded(let result): result.count
        case .failed(let text): text.utf8.count
        }
    }

    /// The client's answer for this outcome.
    public func response(for key: JobKey) -> ClientResponse {
        switch self {
        case .succeeded(let result): .ok(key: key, result: result)
        case .failed(let text): .fail(key: key, text: Array(text.utf8))
        }
    }
}
