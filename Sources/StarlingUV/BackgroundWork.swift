import CLibUV
import Synchronization

/// One closure run on libuv's thread pool (`uv_queue_work`), its result delivered on the loop thread.
///
/// For work that would block the loop: CPU-heavy computation, blocking system calls. The closure is
/// `@Sendable` and its value `Sendable` because they cross threads; the completion is loop-confined.
/// The request memory is owned here and freed in the after-work callback, which libuv always calls
/// exactly once, also for cancelled work, so there is nothing to close. A loop cannot be closed
/// while work is pending: drive it until the completion has run.
public final class BackgroundWork {
    private let context: WorkContext

    /// Queues `work` on the pool; `completion` runs exactly once, on the loop thread, with the value or
    /// with `ECANCELED` after a successful `cancel()`, unless this throws.
    public init<Value: Sendable>(
        loop: EventLoop, work: @escaping @Sendable () -> Value,
        completion: @escaping (Result<Value, UVError>) -> Void
    ) throws(UVError) {
        let context = TypedWorkContext(loop: loop, work: work, completion: completion)
        try context.submit()
        self.context = context
    }

    /// Whether the completion has run (or is running).
    public var isFinished: Bool { !context.isPending }

    /// Cancels the work if no pool thread has picked it up yet; the completion then gets `ECANCELED`
    /// (from the loop, never inside this call). Returns whether it was cancelled; work already
    /// running or finished cannot be cancelled and completes normally.
    @discardableResult
    public func cancel() -> Bool {
        guard context.isPending else { return false }
        return uv_cancel(context.requestBase) == 0
    }
}

/// The object retained in the `uv_work_t`'s `data` from submission to the after-work callback.
///
/// Thread rule: a pool thread calls only `runOnPool()`, which touches only immutable, `Sendable`
/// state; everything else runs on the loop thread.
class WorkContext {
    /// Kept so the loop outlives the request.
    private let loop: EventLoop
    private let request: UnsafeMutablePointer<uv_work_t>
    /// True from a successful submission until the after-work callback; loop thread only.
    private(set) var isPending = false

    init(loop: EventLoop) {
        self.loop = loop
        self.request = .allocate(capacity: 1)
    }

    var requestBase: UnsafeMutablePointer<uv_req_t> { UnsafeMutablePointer(OpaquePointer(request)) }

    /// Queues the request with a retained `self` in its `data`; on failure frees it and throws.
    func submit() throws(UVError) {
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let code = uv_queue_work(loop.raw, request, workRun, workDone)
        if code < 0 {
            Unmanaged<WorkContext>.fromOpaque(request.pointee.data).release()
            request.deallocate()
        } else {
            isPending = true
        }
        try uvCheck(code, "uv_queue_work")
    }

    /// Runs on a pool thread.
    func runOnPool() {}

    /// Runs on the loop thread, once; `status` is 0 or `UV_ECANCELED`.
    func deliver(status: Int32) {}

    /// The after-work callback's part: frees the request, then delivers.
    fileprivate static func finish(_ request: UnsafeMutablePointer<uv_work_t>, status: Int32) {
        let context = Unmanaged<WorkContext>.fromOpaque(request.pointee.data).takeRetainedValue()
        request.deallocate()
        context.isPending = false
        context.deliver(status: status)
    }
}

private final class TypedWorkContext<Value: Sendable>: WorkContext {
    private let work: @Sendable () -> Value
    /// Written by the pool thread, read by the loop thread after libuv hands the request back.
    private let result = Mutex<Value?>(nil)
    private var completion: ((Result<Value, UVError>) -> Void)?

    init(loop: EventLoop, work: @escaping @Sendable () -> Value,
         completion: @escaping (Result<Value, UVError>) -> Void) {
        self.work = work
        self.completion = completion
        super.init(loop: loop)
    }

    override func runOnPool() {
        let value = work()
        result.withLock { $0 = value }
    }

    override func deliver(status: Int32) {
        // Taken out so it can never run twice.
        guard let completion else { return }
        self.completion = nil
        if let error = uvStatus(status, "uv_queue_work") {
            completion(.failure(error))
        } else if let value = result.withLock({ $0.take() }) {
            completion(.success(value))
        } else {
            preconditionFailure("uv_queue_work reported success but the work left no value")
        }
    }
}

private func workRun(_ request: UnsafeMutablePointer<uv_work_t>?) {
    Unmanaged<WorkContext>.fromOpaque(request!.pointee.data).takeUnretainedValue().runOnPool()
}

private func workDone(_ request: UnsafeMutablePointer<uv_work_t>?, _ status: Int32) {
    WorkContext.finish(request!, status: status)
}
