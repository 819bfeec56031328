import StarlingCore
import StarlingUV

/// The loop-confined half of a `StarlingClient`: it owns the event loop's handles, the
/// connection, and the table of unanswered calls. Everything here runs on the client's loop
/// thread; callers reach it only through the `Mailbox`.
final class ClientEngine {
    let loop: EventLoop
    let mailbox: Mailbox
    /// Where the tasks that prefer `StarlingClient.executor` run: here, between events.
    private let executor: UnownedTaskExecutor
    let nodes: [SocketAddress]
    let configuration: StarlingClient.Configuration
    /// Where the connected node's key shards go, for the callers' generated keys.
    let keys: GeneratedKeys

    private var wakeup: LoopWakeup?
    /// Connect timeouts and backoff pauses.
    let linkTimer: Timer
    /// The earliest request deadline.
    private let deadlineTimer: Timer
    private var armedDeadline: UInt64?

    var table: PendingTable
    /// Bytes to write at the end of the current callback, in one write.
    var outbox: [UInt8] = []
    private(set) var isShutDown = false

    // Connection state, managed in ClientEngine+Link.swift.
    var link: Link = .idle
    /// Bumped for every connection attempt and every teardown; callbacks of older ones are ignored.
    var generation: UInt64 = 0
    var decoder: ClientResponseDecoder
    /// `AUTH` is sent on the current connection and its `WELCOME` has not come: requests wait
    /// in the table until it does.
    var awaitingWelcome = false
    var nodeIndex = 0
    var failures = 0
    var failingSince: UInt64?
    var lastFailure = ""
    /// When `SHARDS` was last sent on the current connection; nil before it is.
    var shardsAskedAt: UInt64?
    /// The current node answered `SHARDS` with `BAD_REQUEST` (a worker older than the command):
    /// it is not asked again on this connection.
    var nodeLacksShards = false

    enum Link {
        case idle
        case backingOff
        case connecting(TCPStream)
        case connected(TCPStream)
    }

    /// Runs a client's loop on the current thread until `close()`; `started` is told once whether
    /// the loop and its handles could be created.
    static func run(mailbox: Mailbox, executor: ClientExecutor, nodes: [SocketAddress],
                    configuration: StarlingClient.Configuration, keys: GeneratedKeys, started: (UVError?) -> Void) {
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            started(error)
            return
        }
        let engine: ClientEngine
        do {
            engine = try ClientEngine(loop: loop, mailbox: mailbox, executor: executor, nodes: nodes,
                                      configuration: configuration, keys: keys)
        } catch {
            try? loop.close()
            started(error)
            return
        }
        started(nil)
        while !engine.isShutDown {
            loop.run()
        }
        // Every handle is closed by shutDown(); closing the loop checks that nothing leaked.
        do {
            try loop.close()
        } catch {
            assertionFailure("client loop left a handle open: \(error)")
        }
        mailbox.finish()
    }

    private init(loop: EventLoop, mailbox: Mailbox, executor: ClientExecutor, nodes: [SocketAddress],
                 configuration: StarlingClient.Configuration, keys: GeneratedKeys) throws(UVError) {
        self.loop = loop
        self.mailbox = mailbox
        self.executor = executor.asUnownedTaskExecutor()
        self.nodes = nodes
        self.configuration = configuration
        self.keys = keys
        table = PendingTable(maxInFlight: configuration.maxInFlight, maxWaiting: configuration.maxWaiting,
                             timeoutMs: configuration.requestTimeoutMs)
        decoder = ClientResponseDecoder(maxBodyBytes: configuration.maxAnswerBytes)
        linkTimer = try Timer(loop: loop)
        do {
            deadlineTimer = try Timer(loop: loop)
        } catch {
            linkTimer.close()
            throw error
        }
        do {
            wakeup = try LoopWakeup(loop: loop) { [weak self] in self?.afterEvent() }
        } catch {
            linkTimer.close()
            deadlineTimer.close()
            throw error
        }
        mailbox.attach(wakeup!.waker)
    }

    // MARK: - Commands and tasks from callers

    /// Rounds of the mailbox taken after one event. Tasks on the loop thread that submit again
    /// as soon as they are answered refill it; the bound keeps them from starving the connection.
    private static let maxMailboxRounds = 16

    /// Handles the callers' commands and runs the task jobs queued for `ClientExecutor`, again
    /// while they queue more (up to `maxMailboxRounds`; the rest waits for the next turn of the
    /// loop). On `close()` the jobs still run, and the client shuts down.
    private func drainMailbox() {
        for _ in 0..<Self.maxMailboxRounds {
            let (commands, jobs, closeRequested) = mailbox.take()
            guard !commands.isEmpty || !jobs.isEmpty || closeRequested else { return }
            for command in commands {
                if closeRequested {
                    command.reply?.resume(returning: .failure(.closed))
                } else {
                    handle(command)
                }
            }
            for job in jobs { job.runSynchronously(on: executor) }
            if closeRequested {
                shutDown()
                return
            }
        }
        wakeup?.waker.wake()
    }

    private func handle(_ command: Command) {
        let now = loop.now
        switch command {
        case .submit(let id, let service, let key, let payload, let reply):
            switch table.submit(id: id, service: service, key: key, payload: payload, reply: reply, now: now) {
            case .send(let job): send([job.request])
            case .tracked: ensureLink()
            case .refused(let error): reply.resume(returning: .failure(error))
            }
            askShardsIfDue(now: now)
        case .ping(let id, let reply), .status(let id, let reply):
            let isStatus = if case .status = command { true } else { false }
            table.control(id: id, status: isStatus, reply: reply, now: now)
            send([isStatus ? .status : .ping])
        case .cancel(let id):
            // The caller sends this only after its call command, so an unknown id was answered.
            let (resumption, admitted) = table.remove(id: id, with: .cancelled)
            if let resumption { resume([resumption]) }
            send(admitted.map(\.request))
        }
    }

    /// Sends requests now if connected (and welcomed, with a token); otherwise they go out (from
    /// the table) once connected.
    func send(_ requests: [ClientRequest]) {
        guard !requests.isEmpty else { return }
        if case .connected = link {
            guard !awaitingWelcome else { return }
            for request in requests { request.encode(into: &outbox) }
        } else {
            ensureLink()
        }
    }

    /// Resumes callers with the results the table handed back.
    func resume(_ resumptions: [PendingTable.Resumption]) {
        for (reply, result) in resumptions { reply.resume(returning: result) }
    }

    // MARK: - After every event

    /// Takes what callers queued (answers resumed during the event may have queued their tasks'
    /// next calls), flushes the outbox in one write and re-arms the deadline timer; every
    /// callback entry point ends here.
    func afterEvent() {
        guard !isShutDown else { return }
        drainMailbox()
        guard !isShutDown else { return }
        flush()
        armDeadline()
        // A write that failed at once resumed callers after the mailbox was taken: what their
        // tasks queued from this thread woke nothing (`Mailbox.add`).
        if !mailbox.isEmpty { wakeup?.waker.wake() }
    }

    private func armDeadline() {
        guard let next = table.nextDeadline() else {
            deadlineTimer.stop()
            armedDeadline = nil
            return
        }
        guard next != armedDeadline || !deadlineTimer.isActive else { return }
        armedDeadline = next
        let now = loop.now
        do {
            try deadlineTimer.start(afterMs: next > now ? next - now : 0) { [weak self] in self?.deadlinePassed() }
        } catch {
            // The timer belongs to this engine and is open until shutDown(); nothing to recover.
            assertionFailure("deadline timer: \(error)")
        }
    }

    private func deadlinePassed() {
        armedDeadline = nil
        loop.updateTime()
        let (resume, admitted) = table.expire(now: loop.now)
        self.resume(resume)
        send(admitted.map(\.request))
        afterEvent()
    }

    // MARK: - Shutdown

    /// Fails every pending call with `.closed` and closes every handle, so `loop.run()` returns.
    private func shutDown() {
        guard !isShutDown else { return }
        isShutDown = true
        resume(table.removeAll(with: .closed))
        dropLink()
        linkTimer.close()
        deadlineTimer.close()
        wakeup?.close()
        wakeup = nil
        // Commands queued after the last take() (none can be added once close was requested), and
        // the tasks the calls just failed resumed: they run now, or at `Mailbox.finish()` on the
        // global executor if they queue again.
        let (commands, jobs, _) = mailbox.take()
        for command in commands { command.reply?.resume(returning: .failure(.closed)) }
        for job in jobs { job.runSynchronously(on: executor) }
    }
}
