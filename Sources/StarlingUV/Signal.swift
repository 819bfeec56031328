import CLibUV

/// Watches one POSIX signal (SIGINT, SIGTERM, ...) and runs a closure on the loop thread when it arrives.
///
/// libuv turns the asynchronous signal into a loop event, so the closure may do anything.
/// Loop-confined.
public final class Signal {
    private let context: SignalContext

    /// Creates an idle signal watcher on `loop`.
    public init(loop: EventLoop) throws(UVError) {
        let handle = allocateHandle(uv_signal_t.self)
        do {
            try uvCheck(uv_signal_init(loop.raw, handle), "uv_signal_init")
        } catch {
            handle.deallocate()
            throw error
        }
        context = SignalContext(loop: loop, initialised: handle)
    }

    deinit {
        assert(context.state != .open, "Signal deallocated without close()")
    }

    /// Starts (or retargets) watching `signalNumber`; `handler` gets the signal number each time.
    public func start(signal signalNumber: Int32, _ handler: @escaping (Int32) -> Void) throws(UVError) {
        let signal = try context.live(as: uv_signal_t.self, "uv_signal_start \(signalNumber)")
        context.onSignal = handler
        try uvCheck(uv_signal_start(signal, signalArrived, signalNumber), "uv_signal_start \(signalNumber)")
    }

    /// Stops watching; no effect once closed.
    public func stop() {
        guard context.state == .open else { return }
        _ = uv_signal_stop(context.pointer(as: uv_signal_t.self))  // cannot fail on a live handle
    }

    /// Closes the watcher; idempotent.
    public func close() {
        context.close()
    }
}

private final class SignalContext: HandleContext {
    var onSignal: ((Int32) -> Void)?

    override func didClose() {
        onSignal = nil
        super.didClose()
    }
}

private func signalArrived(_ handle: UnsafeMutablePointer<uv_signal_t>?, _ signalNumber: Int32) {
    let context = HandleContext.unretained(handle, as: SignalContext.self)
    guard let onSignal = context.onSignal else { return }
    onSignal(signalNumber)
}
