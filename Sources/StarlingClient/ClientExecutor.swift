/// A task executor on the client's own loop thread (`StarlingClient.executor`).
///
/// A task that prefers it (`withTaskExecutorPreference(client.executor)`, or
/// `group.addTask(executorPreference: client.executor)`) runs on the loop thread between the
/// loop's events: its `submit` reaches the loop without waking another thread, and its answer
/// resumes it there too, so a call costs no thread hand-off at all. Without a preference a call
/// hops to the loop thread and back to the global executor. Code that runs here must not block:
/// it would stall the client's I/O.
///
/// Jobs enqueued once the client is closed run on the global concurrent executor, so no task is
/// ever stranded.
public final class ClientExecutor: TaskExecutor, Sendable {
    private let mailbox: Mailbox

    init(mailbox: Mailbox) {
        self.mailbox = mailbox
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if !mailbox.enqueue(job) { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}
