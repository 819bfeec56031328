#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// SIGINT/SIGTERM received by the demo: the first stops it in order, a second hurries the stop.
enum DemoSignals {
    /// How many have arrived.
    static var received: Int { count.load(ordering: .relaxed) }

    /// Counts SIGINT and SIGTERM instead of dying of them; ignores SIGPIPE (a closed output must
    /// not end the demo before it has stopped its processes).
    static func install() {
        signal(SIGPIPE, SIG_IGN)
        for number in [SIGINT, SIGTERM] {
            signal(number) { _ in DemoSignals.count.add(1, ordering: .relaxed) }
        }
    }

    private static let count = Atomic<Int>(0)
}
