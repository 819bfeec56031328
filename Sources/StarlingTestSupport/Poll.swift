#if canImport(Glibc)
import Glibc
#endif

/// Asks `probe` until it returns a value or `timeout` has passed; the value, or nil. It gives up
/// only after a probe that began at or after the deadline: on a loaded machine a probe begun in
/// time may finish long after it (its thread was not scheduled), and its answer is then stale.
/// The pause between two probes is a poll interval, not a synchronisation: what is waited for is
/// always the probe's answer.
public func poll<T>(
    within timeout: Duration, every interval: Duration = .milliseconds(10), _ probe: () throws -> T?
) rethrows -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        let isLastProbe = ContinuousClock.now >= deadline
        if let value = try probe() { return value }
        if isLastProbe { return nil }
        let left = max(.zero, deadline - ContinuousClock.now)
        usleep(microseconds(min(interval, left)))
    }
}

/// `poll` for async code: it pauses with `Task.sleep`, so a long wait does not hold one of the
/// few cooperative threads, and the probe may itself await.
public func pollAsync<T>(
    within timeout: Duration, every interval: Duration = .milliseconds(10), _ probe: () async throws -> T?
) async rethrows -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        let isLastProbe = ContinuousClock.now >= deadline
        if let value = try await probe() { return value }
        if isLastProbe { return nil }
        let left = max(.zero, deadline - ContinuousClock.now)
        try? await Task.sleep(for: min(interval, left))
    }
}

private func microseconds(_ duration: Duration) -> UInt32 {
    let (seconds, attoseconds) = duration.components
    return UInt32(clamping: max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}
