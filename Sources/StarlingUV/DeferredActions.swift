import CLibUV

/// The queue behind `EventLoop.soon(_:)`: actions run from the loop's idle phase, before it next
/// waits for I/O. One `uv_idle_t` per loop, active only while actions wait, so an empty queue
/// costs nothing and a non-empty one keeps the loop alive and its next poll from blocking.
/// Loop-confined; owned by its `EventLoop`, which closes it before closing the loop.
final class DeferredActions {
    /// Rounds of actions queued by actions run in one idle callback; what is left then waits for
    /// the next loop iteration, so an action that queues itself again cannot starve I/O.
    static let maxRoundsPerIteration = 16

    private let handle: UnsafeMutablePointer<uv_idle_t>
    private var queued: [() -> Void] = []
    private var running: [() -> Void] = []
    private var isStarted = false
    private var isClosed = false

    init(loop: UnsafeMutablePointer<uv_loop_t>) throws(UVError) {
        let handle = allocateHandle(uv_idle_t.self)
        do {
            try uvCheck(uv_idle_init(loop, handle), "uv_idle_init")
        } catch {
            handle.deallocate()
            throw error
        }
        self.handle = handle
        // Unretained: the loop owns this object, and only uv_run (which needs the loop) calls back.
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self).pointee.data =
            Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        assert(isClosed, "DeferredActions deallocated without close()")
    }

    func append(_ action: @escaping () -> Void) {
        precondition(!isClosed, "EventLoop.soon after close()")
        queued.append(action)
        guard !isStarted else { return }
        isStarted = true
        // uv_idle_start fails only for a closing handle, which `isClosed` rules out.
        _ = uv_idle_start(handle, idleRan)
    }

    /// Runs what is queued, and what those actions queue, for a bounded number of rounds.
    fileprivate func runQueued() {
        var rounds = 0
        while !queued.isEmpty, rounds < Self.maxRoundsPerIteration, !isClosed {
            swap(&queued, &running)
            for action in running { action() }
            running.removeAll(keepingCapacity: true)
            rounds += 1
        }
        if queued.isEmpty, isStarted {
            isStarted = false
            _ = uv_idle_stop(handle)
        }
    }

    /// Drops whatever waits and closes the handle; its memory goes in the close callback. Idempotent.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        queued = []
        let base = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        base.pointee.data = nil
        uv_close(base, deferredActionsClosed)
    }
}

private func idleRan(_ handle: UnsafeMutablePointer<uv_idle_t>?) {
    guard let data = handle?.pointee.data else { return }
    Unmanaged<DeferredActions>.fromOpaque(data).takeUnretainedValue().runQueued()
}

private func deferredActionsClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    UnsafeMutableRawPointer(handle)?.deallocate()
}
