import Foundation

/// Runs `body` on the cooperative pool and blocks this thread until it is done.
func blockOn(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        await body()
        done.signal()
    }
    done.wait()
}
