import CLibUV

/// The object retained in a handle's `data` for as long as libuv may call back into the handle.
///
/// The public handle classes (`Timer`, `UDPSocket`, ...) own one of these. libuv owns one retain,
/// taken when the handle is initialised and given back only by the close callback, so neither the
/// context nor the handle memory can go away while a callback is still possible.
class HandleContext {
    enum State { case open, closing, closed }

    /// Kept so the `uv_loop_t` outlives every handle on it.
    let loop: EventLoop
    /// The heap-allocated `uv_xxx_t`; freed only by the close callback.
    private let raw: UnsafeMutableRawPointer
    private(set) var state: State = .open

    /// Adopts a handle whose `uv_xxx_init` succeeded and stores a retained `self` in its `data`.
    init<Handle>(loop: EventLoop, initialised handle: UnsafeMutablePointer<Handle>) {
        self.loop = loop
        self.raw = UnsafeMutableRawPointer(handle)
        self.handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// The handle as its base type, for `uv_close` and friends.
    var handle: UnsafeMutablePointer<uv_handle_t> { pointer(as: uv_handle_t.self) }

    /// The handle as a concrete libuv type; libuv handle structs share the `uv_handle_t` prefix.
    func pointer<Handle>(as type: Handle.Type) -> UnsafeMutablePointer<Handle> {
        UnsafeMutablePointer<Handle>(OpaquePointer(raw))
    }

    /// The handle, or `EBADF` once `close()` has been called: libuv forbids using a closing handle.
    func live<Handle>(as type: Handle.Type, _ operation: @autoclosure () -> String) throws(UVError)
        -> UnsafeMutablePointer<Handle>
    {
        try uvCheck(state == .open ? 0 : UVCode.badHandle, operation())
        return pointer(as: type)
    }

    /// Starts closing; idempotent. Resources go when libuv calls back.
    func close() {
        guard state == .open else { return }
        state = .closing
        uv_close(handle, handleDidClose)
    }

    /// Called once, from the close callback; subclasses drop closures and free buffers here.
    func didClose() {
        state = .closed
    }

    /// The context stored in a handle's `data`, without touching its retain count.
    static func unretained<Context: HandleContext>(
        _ handle: UnsafeMutableRawPointer?, as type: Context.Type = Context.self
    ) -> Context {
        let base = handle!.assumingMemoryBound(to: uv_handle_t.self)
        return Unmanaged<Context>.fromOpaque(base.pointee.data).takeUnretainedValue()
    }
}

/// The only place a handle's context is released and its memory freed.
private func handleDidClose(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    let context = Unmanaged<HandleContext>.fromOpaque(handle.pointee.data).takeRetainedValue()
    handle.pointee.data = nil
    context.didClose()
    UnsafeMutableRawPointer(handle).deallocate()
}

/// A heap allocation for a libuv handle; it must not move once initialised.
func allocateHandle<Handle>(_ type: Handle.Type) -> UnsafeMutablePointer<Handle> {
    UnsafeMutablePointer<Handle>.allocate(capacity: 1)
}
