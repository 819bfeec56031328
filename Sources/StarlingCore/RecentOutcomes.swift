import DequeModule

/// Outcomes of recently finished jobs, so that a key submitted again gets the same answer without
/// running again. Bounded in count, in bytes of results and in time; the oldest go first.
public struct RecentOutcomes: Sendable {
    /// The default bound on the bytes of results kept by one cache.
    public static let defaultMaxBytes = 32 << 20

    public let capacity: Int
    public let maxBytes: Int
    public let ttlMs: Int64
    private var outcomes: [JobID: JobOutcome] = [:]
    private var order: Deque<(id: JobID, expiresMs: Int64)> = []
    private var bytes = 0

    public init(capacity: Int, ttlMs: Int64, maxBytes: Int = defaultMaxBytes) {
        self.capacity = max(1, capacity)
        self.maxBytes = max(0, maxBytes)
        self.ttlMs = ttlMs
    }

    public var count: Int { outcomes.count }

    public subscript(id: JobID) -> JobOutcome? { outcomes[id] }

    /// Keeps `outcome`, dropping the oldest entries while over a bound. A result larger than the
    /// byte bound is not kept: a key submitted again then runs again.
    public mutating func remember(_ outcome: JobOutcome, for id: JobID, nowMs: Int64) {
        let size = outcome.byteCount
        guard size <= maxBytes, outcomes[id] == nil else { return }
        outcomes[id] = outcome
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

    private mutating func dropOldest(_ id: JobID) {
        if let outcome = outcomes.removeValue(forKey: id) { bytes -= outcome.byteCount }
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
