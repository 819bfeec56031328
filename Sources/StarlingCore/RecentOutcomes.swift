import DequeModule

/// Outcomes of recently finished jobs, so that a key submitted again gets the same answer without
/// running again. Bounded in count and in time; the oldest go first.
public struct RecentOutcomes: Sendable {
    public let capacity: Int
    public let ttlMs: Int64
    private var outcomes: [JobID: JobOutcome] = [:]
    private var order: Deque<(id: JobID, expiresMs: Int64)> = []

    public init(capacity: Int, ttlMs: Int64) {
        self.capacity = max(1, capacity)
        self.ttlMs = ttlMs
    }

    public var count: Int { outcomes.count }

    public subscript(id: JobID) -> JobOutcome? { outcomes[id] }

    public mutating func remember(_ outcome: JobOutcome, for id: JobID, nowMs: Int64) {
        guard outcomes.updateValue(outcome, forKey: id) == nil else { return }
        order.append((id, nowMs + ttlMs))
        while order.count > capacity, let oldest = order.popFirst() {
            outcomes[oldest.id] = nil
        }
    }

    public mutating func expire(nowMs: Int64) {
        while let oldest = order.first, oldest.expiresMs <= nowMs {
            order.removeFirst()
            outcomes[oldest.id] = nil
        }
    }
}

extension JobOutcome {
    /// The client's answer for this outcome.
    public func response(for key: JobKey) -> ClientResponse {
        switch self {
        case .succeeded(let result): .ok(key: key, result: result)
        case .failed(let text): .fail(key: key, text: Array(text.utf8))
        }
    }
}
