import CLibUV

/// One libuv event loop. Loop-confined: create, use and close it on a single thread.
public final class EventLoop {
    /// The `uv_loop_t`; heap-allocated because libuv keeps pointers into it.
    let raw: UnsafeMutablePointer<uv_loop_t>
    /// The actions of `soon(_:)`.
    private let deferred: DeferredActions
    private var isRunning = false
    private var closeAttempted = false
    private var isClosed = false

    /// Creates and initialises a loop.
    public init() throws(UVError) {
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        do {
            try uvCheck(uv_loop_init(loop), "uv_loop_init")
        } catch {
            loop.deallocate()
            throw error
        }
        do {
            deferred = try DeferredActions(loop: loop)
        } catch {
            _ = uv_loop_close(loop)
            loop.deallocate()
            throw error
        }
        raw = loop
    }

    deinit {
        // A loop that failed to close still has handles pointing into it, so its memory is leaked
        // on purpose; `close()` has already reported why.
        assert(closeAttempted, "EventLoop deallocated without close()")
    }

    /// Runs until no active handles remain or `stop()` is called; returns whether handles are still active.
    @discardableResult
    public func run() -> Bool {
        runLoop(UV_RUN_DEFAULT)
    }

    /// Runs one iteration, blocking for I/O unless `nowait`; returns whether handles are still active.
    @discardableResult
    public func runOnce(nowait: Bool = false) -> Bool {
        runLoop(nowait ? UV_RUN_NOWAIT : UV_RUN_ONCE)
    }

    /// Runs until `condition` holds or `timeoutMs` elapses; returns whether `condition` held.
    ///
    /// A private timer bounds the wait, so this never spins and never sleeps past the deadline.
    public func run(until condition: () -> Bool, timeoutMs: UInt64) throws(UVError) -> Bool {
        if condition() { return true }
        let deadline = try Timer(loop: self)
        defer { deadline.close() }
        var expired = false
        try deadline.start(afterMs: timeoutMs) { expired = true }
        while !condition() && !expired {
            runOnce()
        }
        return condition()
    }

    /// Runs `action` on the loop thread soon: never inside this call, but from the loop's idle
    /// phase before the loop next waits for I/O (within this iteration's callbacks' reach: an
    /// action queued by a read callback runs before the loop polls again). Actions run in the order
    /// queued; an action may queue more. Cheaper than a timer per action: one shared idle handle,
    /// active only while actions wait, which also keeps the loop alive. Actions still queued when
    /// the loop closes are dropped without running.
    public func soon(_ action: @escaping () -> Void) {
        deferred.append(action)
    }

    /// Asks a running loop to return after the current iteration.
    public func stop() {
        uv_stop(raw)
    }

    /// The loop's cached time in milliseconds (`uv_now`), updated at the start of each iteration.
    public var now: UInt64 { uv_now(raw) }

    /// A monotonic clock in nanoseconds (`uv_hrtime`), read now: for durations finer than `now`'s.
    public static var hrtimeNs: UInt64 { uv_hrtime() }

    /// Refreshes the cached time used by `now` and by timers started from here.
    public func updateTime() {
        uv_update_time(raw)
    }

    /// Finishes pending close callbacks, then closes the loop; fails with `EBUSY` if any handle is still open.
    ///
    /// Idempotent once it has succeeded. Must not be called from inside a callback of this loop.
    public func close() throws(UVError) {
        guard !isClosed else { return }
        precondition(!isRunning, "EventLoop.close() called from inside the loop")
        closeAttempted = true
        deferred.close()
        // Close callbacks run at the end of an iteration, and a close callback may close another
        // handle, so iterate a bounded number of times without blocking.
        var iterations = 0
        while uv_loop_alive(raw) != 0 && iterations < 16 {
            runLoop(UV_RUN_NOWAIT)
            iterations += 1
        }
        try uvCheck(uv_loop_close(raw), "uv_loop_close")
        raw.deallocate()
        isClosed = true
    }

    @discardableResult
    private func runLoop(_ mode: uv_run_mode) -> Bool {
        // uv_run is not reentrant; calling it from a callback corrupts the loop.
        precondition(!isRunning, "EventLoop run from inside one of its own callbacks")
        precondition(!isClosed, "EventLoop run after close()")
        isRunning = true
        defer { isRunning = false }
        return uv_run(raw, mode) != 0
    }
}
