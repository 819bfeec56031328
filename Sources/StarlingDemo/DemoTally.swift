import Synchronization

/// The workload's shared tallies: updated by lanes, read by the display.
public final class DemoTally: Sendable {
    private struct State {
        public var counts: [String: DemoJobCounts] = [:]
        public var latenciesMs: [String: [Double]] = [:]
        /// The first few problems, to print.
        var problems: [String] = []
        var problemCount = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func submitted(_ service: String) {
        state.withLock { $0.counts[service, default: DemoJobCounts()].submitted += 1 }
    }

    public func record(_ service: String, latencyMs: Double, update: (inout DemoJobCounts) -> Void) {
        state.withLock {
            update(&$0.counts[service, default: DemoJobCounts()])
            $0.latenciesMs[service, default: []].append(latencyMs)
        }
    }

    public func retried(_ service: String) {
        state.withLock { $0.counts[service, default: DemoJobCounts()].retried += 1 }
    }

    /// Notes a problem; returns its text when it is among the first few (to print), nil otherwise.
    public func problem(_ text: String) -> String? {
        state.withLock {
            $0.problemCount += 1
            guard $0.problems.count < 10 else { return nil }
            $0.problems.append(text)
            return text
        }
    }

    public var counts: [String: DemoJobCounts] { state.withLock { $0.counts } }
    public var total: DemoJobCounts { counts.values.reduce(DemoJobCounts(), +) }
    /// Submit-to-answer times per service, in milliseconds.
    public var latenciesMs: [String: [Double]] { state.withLock { $0.latenciesMs } }
    public var problemCount: Int { state.withLock { $0.problemCount } }
}
