import CLibUV
import Synchronization

/// Wakes a loop from other threads (`uv_async_t`): `waker.wake()` may be called from any thread,
/// and the closure runs on the loop thread soon after. Wakes that arrive before the closure has run
/// are coalesced into one call, so the closure should drain whatever work was handed over (for
/// example a lock-protected queue) rather than count calls.
///
/// The `LoopWakeup` itself is loop-confined: create and close it on the loop thread. Only its
/// `Waker` crosses threads, and a `Waker` stays safe to call after the handle is closed: it then
/// does nothing and returns false.
public final class LoopWakeup {
    private let context: WakeupContext
    /// The thread-safe half; hand it to other threads.
    public let waker: Waker

    /// Creates the handle on `loop`; `onWake` runs on the loop thread after one or more `wake()`s.
    ///
    /// Like every active handle it keeps `EventLoop.run()` from returning until it is closed.
    public init(loop: EventLoop, onWake: @escaping () -> Void) throws(UVError) {
        let handle = allocateHandle(uv_async_t.self)
        do {
            try uvCheck(uv_async_init(loop.raw, handle, wakeupArrived), "uv_async_init")
        } catch {
            handle.deallocate()
            throw error
        }
        context = WakeupContext(loop: loop, initialised: handle)
        context.onWake = onWake
        waker = Waker(handle: handle)
    }

    deinit {
        assert(context.state != .open, "LoopWakeup deallocated without close()")
    }

    /// Closes the handle; idempotent. Wakes sent afterwards do nothing, and a wake that was sent
    /// but not yet delivered is dropped.
    public func close() {
        guard context.state == .open else { return }
        // Under the waker's lock, so no other thread is inside uv_async_send while libuv closes.
        waker.detach()
        context.close()
    }

    /// The half of a `LoopWakeup` that other threads call.
    public final class Waker: Sendable {
        /// The handle while it is open; nil from the moment `close()` starts.
        private let handle: Mutex<AsyncHandle?>

        fileprivate init(handle: UnsafeMutablePointer<uv_async_t>) {
            self.handle = Mutex(AsyncHandle(pointer: handle))
        }

        /// Asks the loop to run the closure; returns false (and does nothing) once closed.
        /// Safe from any thread, including the loop thread (not from a signal handler: it locks).
        @discardableResult
        public func wake() -> Bool {
            handle.withLock { handle in
                guard let handle else { return false }
                // uv_async_send fails only for a handle that is not an async handle.
                return uv_async_send(handle.pointer) == 0
            }
        }

        /// Whether the handle is still open, so `wake()` would reach the loop.
        public var isOpen: Bool { handle.withLock { $0 != nil } }

        fileprivate func detach() {
            handle.withLock { $0 = nil }
        }
    }
}

/// The raw async handle, owned by the `WakeupContext`; the waker only borrows it under its lock,
/// and the lock guarantees it is never used after `close()` began.
private struct AsyncHandle: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<uv_async_t>
}

private final class WakeupContext: HandleContext {
    var onWake: (() -> Void)?

    override func didClose() {
        onWake = nil
        super.didClose()
    }
}

private func wakeupArrived(_ handle: UnsafeMutablePointer<uv_async_t>?) {
    let context = HandleContext.unretained(handle, as: WakeupContext.self)
    guard context.state == .open, let onWake = context.onWake else { return }
    onWake()
}
