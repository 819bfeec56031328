import Prometheus

/// A Prometheus counter that follows a count kept elsewhere: it is raised by what the count
/// gained since it was last read.
final class CounterMirror {
    private let counter: Counter
    private var last: UInt64 = 0

    init(_ counter: Counter) {
        self.counter = counter
    }

    func follow(_ count: UInt64) {
        guard count > last else { return }
        counter.increment(by: Int64(clamping: count - last))
        last = count
    }
}
