import CLibUV

/// A libuv poll handle: calls back when a descriptor this module owns becomes readable. The
/// descriptor stays its owner's; closing the watch only stops watching. Loop-confined.
final class PollWatch {
    private let context: PollContext

    /// Creates a stopped watch of `descriptor` (a socket) on `loop`.
    init(loop: EventLoop, socket descriptor: Int32) throws(UVError) {
        let handle = allocateHandle(uv_poll_t.self)
        do {
            try uvCheck(uv_poll_init_socket(loop.raw, handle, descriptor), "uv_poll_init_socket")
        } catch {
            handle.deallocate()
            throw error
        }
        context = PollContext(loop: loop, initialised: handle)
    }

    deinit {
        assert(context.state != .open, "PollWatch deallocated without close()")
    }

    /// (Re)starts watching for readability; `onReadable` runs on the loop each time it is.
    func startReadable(_ onReadable: @escaping () -> Void) throws(UVError) {
        let poll = try context.live(as: uv_poll_t.self, "uv_poll_start")
        context.onReadable = onReadable
        try uvCheck(uv_poll_start(poll, Int32(UV_READABLE.rawValue), pollFired), "uv_poll_start")
    }

    /// Stops watching; it can be started again. No effect once closed.
    func stop() {
        guard context.state == .open else { return }
        _ = uv_poll_stop(context.pointer(as: uv_poll_t.self))
    }

    /// Stops watching for good (at once: libuv takes the descriptor out of its poll set in
    /// `uv_close`), so the owner may close the descriptor right after; idempotent.
    func close() {
        context.close()
    }
}

private final class PollContext: HandleContext {
    var onReadable: (() -> Void)?

    override func didClose() {
        onReadable = nil
        super.didClose()
    }
}

private func pollFired(_ handle: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
    let context = HandleContext.unretained(handle, as: PollContext.self)
    // An error status (EBADF) also means "try the descriptor": the accept reports what is wrong.
    guard let onReadable = context.onReadable else { return }
    onReadable()
}
