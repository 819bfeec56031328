import CLibUV

/// A libuv timer: calls a closure once after a delay, then optionally every `repeatMs`.
public final class Timer {
    private let context: TimerContext

    /// Creates a stopped timer on `loop`.
    public init(loop: EventLoop) throws(UVError) {
        let handle = allocateHandle(uv_timer_t.self)
        do {
            try uvCheck(uv_timer_init(loop.raw, handle), "uv_timer_init")
        } catch {
            handle.deallocate()
            throw error
        }
        context = TimerContext(loop: loop, initialised: handle)
    }

    deinit {
        assert(context.state != .open, "Timer deallocated without close()")
    }

    /// (Re)starts the timer: `onFire` runs after `afterMs`, then every `repeatMs` if that is non-zero.
    public func start(afterMs: UInt64, repeatMs: UInt64 = 0, _ onFire: @escaping () -> Void) throws(UVError) {
        let timer = try context.live(as: uv_timer_t.self, "uv_timer_start")
        context.onFire = onFire
        try uvCheck(uv_timer_start(timer, timerFired, afterMs, repeatMs), "uv_timer_start")
    }

    /// Stops the timer; it can be started again. No effect once closed.
    public func stop() {
        guard context.state == .open else { return }
        uv_timer_stop(context.pointer(as: uv_timer_t.self))
    }

    /// Whether the timer is started and has not fired its last time.
    public var isActive: Bool {
        context.state == .open && uv_is_active(context.handle) != 0
    }

    /// Closes the timer; idempotent. The closure is released once libuv confirms the close.
    public func close() {
        context.close()
    }
}

private final class TimerContext: HandleContext {
    var onFire: (() -> Void)?

    override func didClose() {
        onFire = nil  // breaks any cycle through a closure that captures the Timer
        super.didClose()
    }
}

private func timerFired(_ handle: UnsafeMutablePointer<uv_timer_t>?) {
    let context = HandleContext.unretained(handle, as: TimerContext.self)
    // Copy first: the closure may restart the timer with a new closure while it runs.
    guard let onFire = context.onFire else { return }
    onFire()
}
