import StarlingCore
import StarlingUV
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The result a caller waits for: what the loop thread hands back through a continuation.
enum Reply: Sendable {
    case job(JobAnswer)
    case pong
    case status([UInt8])
}

typealias ReplyContinuation = CheckedContinuation<Result<Reply, StarlingClientError>, Never>

/// What a caller asks the loop thread to do.
enum Command: Sendable {
    case submit(id: UInt64, service: ServiceName, key: JobKey, payload: [UInt8], reply: ReplyContinuation)
    case ping(id: UInt64, reply: ReplyContinuation)
    case status(id: UInt64, reply: ReplyContinuation)
    /// The caller's task was cancelled: answer it `.cancelled` and stop tracking it.
    case cancel(id: UInt64)

    /// The continuation to resume if the command cannot be carried out.
    var reply: ReplyContinuation? {
        switch self {
        case .submit(_, _, _, _, let reply), .ping(_, let reply), .status(_, let reply): reply
        case .cancel: nil
        }
    }
}

/// The thread-safe hand-off between callers (any thread) and the client's loop thread: a
/// lock-protected queue of commands and of task jobs for `ClientExecutor`, plus the loop's waker.
final class Mailbox: Sendable {
    private struct State {
        var commands: [Command] = []
        var jobs: [UnownedJob] = []
        var waker: LoopWakeup.Waker?
        /// The loop's thread, once attached.
        var loopThread: pthread_t?
        /// Set by `close()` (or the client's deinit): no command is accepted any more.
        var closeRequested = false
        /// Set by the loop thread as its last act: the loop is closed and the thread is ending.
        var finished = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []

        var isEmpty: Bool { commands.isEmpty && jobs.isEmpty }
    }

    private let state = Mutex(State())

    /// Called once by the loop thread when its wakeup handle exists.
    func attach(_ waker: LoopWakeup.Waker) {
        let wake = state.withLock { state in
            state.waker = waker
            state.loopThread = pthread_self()
            return !state.isEmpty || state.closeRequested
        }
        if wake { waker.wake() }
    }

    /// Whether nothing waits to be taken.
    var isEmpty: Bool { state.withLock { $0.isEmpty } }

    /// Queues a command for the loop thread; false (and nothing queued) once closing.
    func send(_ command: Command) -> Bool {
        add(refusedWhen: \.closeRequested) { $0.commands.append(command) }
    }

    /// Queues a task job for the loop thread; false (and nothing queued) once the loop has
    /// finished, when the caller runs it elsewhere. Jobs are taken while closing: the loop runs
    /// them until its last act.
    func enqueue(_ job: UnownedJob) -> Bool {
        add(refusedWhen: \.finished) { $0.jobs.append(job) }
    }

    /// Only what finds the mailbox empty wakes the loop: the loop takes everything at once, and
    /// until it has, the wake for the first arrival is still to be delivered. Nor does what the
    /// loop thread adds itself (a task on `ClientExecutor` submitting, an answer resuming one):
    /// every callback of the loop ends by taking the mailbox (`ClientEngine.afterEvent`), so a
    /// wake would only cost an eventfd write and an empty turn of the loop, twice per call.
    private func add(refusedWhen refused: (State) -> Bool, _ append: (inout State) -> Void) -> Bool {
        let waker: LoopWakeup.Waker?? = state.withLock { state in
            guard !refused(state) else { return .none }
            let wasEmpty = state.isEmpty
            append(&state)
            let onLoopThread = state.loopThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
            return .some(wasEmpty && !onLoopThread ? state.waker : nil)
        }
        guard case .some(let waker) = waker else { return false }
        waker?.wake()
        return true
    }

    /// Everything queued so far, and whether the client is closing.
    func take() -> (commands: [Command], jobs: [UnownedJob], closeRequested: Bool) {
        state.withLock { state in
            defer {
                state.commands.removeAll(keepingCapacity: true)
                state.jobs.removeAll(keepingCapacity: true)
            }
            return (state.commands, state.jobs, state.closeRequested)
        }
    }

    /// Asks the loop thread to shut down; `waiter` (if any) is resumed once it has.
    func requestClose(waiter: CheckedContinuation<Void, Never>?) {
        let (waker, finished) = state.withLock { state in
            if !state.finished, let waiter { state.closeWaiters.append(waiter) }
            state.closeRequested = true
            return (state.waker, state.finished)
        }
        if finished {
            waiter?.resume()
        } else {
            waker?.wake()
        }
    }

    /// Called by the loop thread as its last act (or by `init` if the thread could not start):
    /// fails any command still queued with `.closed`, hands any task job still queued to the
    /// global executor, then resumes everyone waiting in `close()`.
    func finish() {
        let (waiters, leftovers, jobs) = state.withLock { state in
            state.finished = true
            state.closeRequested = true
            state.waker = nil
            defer { state.closeWaiters = []; state.commands = []; state.jobs = [] }
            return (state.closeWaiters, state.commands, state.jobs)
        }
        for command in leftovers { command.reply?.resume(returning: .failure(.closed)) }
        for job in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
        waiters.forEach { $0.resume() }
    }
}
