#if canImport(Glibc)
import Glibc
#endif

/// Asks `probe` until it returns a value or `timeout` has passed (it is asked at least once, and
/// once more at the deadline); the value, or nil at the deadline. The pause between two probes is
/// a poll interval, not a synchronisation: what is waited for is always the probe's answer.
public func poll<T>(
    within timeout: Duration, every interval: Duration = .milliseconds(10), _ probe: () throws -> T?
) rethrows -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = try probe() { return value }
        let left = deadline - ContinuousClock.now
        if left <= .zero { return nil }
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
        if let value = try await probe() { return value }
        let left = deadline - ContinuousClock.now
        if left <= .zero { return nil }
        try? await Task.sleep(for: min(interval, left))
    }
}

private func microseconds(_ duration: Duration) -> UInt32 {
    let (seconds, attoseconds) = duration.components
    return UInt32(clamping: max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}
