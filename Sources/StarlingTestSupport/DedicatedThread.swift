import Foundation

/// Runs blocking `work` (socket loops, blocking reads and waits of seconds) on a thread of its own
/// and awaits its result, so an `async` test does not hold one of the few cooperative threads that
/// swift-testing runs every test on (two on a two-core CI machine) while it blocks.
///
/// `work` runs outside the test's task: record expectations on what it returns, not inside it
/// (an `#expect` on another thread is not attributed to the test).
public func runOnDedicatedThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result(catching: work)) }.start()
    }
}

/// `runOnDedicatedThread` for work that cannot throw.
public func runOnDedicatedThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}
