import StarlingCore
import StarlingUV

/// Runs the jobs of one service type on a worker's event loop.
///
/// Loop-confined and not `Sendable`: create it, start jobs and cancel them on the loop thread. The
/// loop never blocks: waiting is done with timers and child-process events, CPU work goes to libuv's
/// thread pool.
public protocol JobHandler: AnyObject {
    /// Starts the job `key` (the client's key, which a command sees as `STARLING_JOB_KEY`);
    /// `completion` is called exactly once on the loop thread, never synchronously inside `start`
    /// (nor inside `cancel`).
    ///
    /// The running job keeps itself alive until it has completed, so the caller may drop the
    /// returned value if it never needs to cancel.
    func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob
}

/// One started job.
public protocol RunningJob: AnyObject {
    /// Stops the job (killing its process, if it has one). If the completion has not run yet it
    /// still runs once, later, with `.failed("cancelled")`; otherwise this does nothing.
    func cancel()
}

/// The handler a service definition asks for, running its jobs on `loop`.
public func makeHandler(for definition: ServiceDefinition, loop: EventLoop) -> any JobHandler {
    let timeoutMs = definition.timeoutMs
    switch definition.handler {
    case .builtin(.echo): return EchoHandler(loop: loop)
    case .builtin(.sleep): return SleepHandler(loop: loop, timeoutMs: timeoutMs)
    case .builtin(.sha256): return SHA256Handler(loop: loop, timeoutMs: timeoutMs)
    case .builtin(.spin): return SpinHandler(loop: loop, timeoutMs: timeoutMs)
    case .command(let argv):
        return CommandHandler(
            loop: loop, service: definition.service, argv: argv, timeoutMs: timeoutMs,
            limits: CommandHandler.Limits(maxOutputBytes: definition.maxResultBytes))
    }
}
