import Foundation
import StarlingCore
import StarlingUV
import Synchronization

/// An async/await client of the job protocol (docs/PROTOCOL.md) with failover.
///
/// ```swift
/// let client = try StarlingClient(nodes: ["127.0.0.1:7946", "127.0.0.1:7947"])
/// switch try await client.submit(service: "echo", payload: Array("hello".utf8)) {
/// case .ok(let result): print(String(decoding: result, as: UTF8.self))
/// case .failed(let text): print("failed: \(text)")
/// case .error(let code, let message): print("\(code.rawValue): \(message)")
/// }
/// await client.close()
/// ```
///
/// - Pipelining: all calls share one TCP connection; answers come back in any order and are
///   matched by job key. At most `Configuration.maxInFlight` distinct jobs are in flight; further
///   callers wait (FIFO) for a slot, and beyond `maxWaiting` waiting callers `submit` throws
///   `.overloaded` at once.
/// - Keys: a `submit` without a key gets a fresh unique one, chosen in the key shards the node
///   holds when it holds some of the job's service, so the job runs there without crossing the
///   primary (docs/PROTOCOL.md, "Key shards"; the client asks `SHARDS` on every connection and
///   again every second while jobs are submitted). A `submit` whose key is already in flight on
///   this client attaches to that job and gets the same answer; nothing is sent twice.
/// - Failover: the client connects to the first node; when a connect fails or the connection
///   drops, it moves to the next node in the list (immediately, then with a doubling backoff) and
///   resends every unanswered job with its key, so the nodes can deduplicate. Each call gets
///   exactly one answer; an answer for a key already answered is dropped. After
///   `maxConnectAttempts` failures in a row or `failoverTimeoutMs`, every pending call throws
///   `.unreachable`; the next call starts over.
/// - Tokens: with `Configuration.token` every connection starts with `AUTH` and calls go out once
///   the node answers `WELCOME`. An `ERR - UNAUTHORIZED` (a wrong token, or none where the nodes
///   want one) fails every pending call with `.unauthorized` at once, without failover: the nodes
///   share the cluster's tokens (docs/PROTOCOL.md, "Authentication").
/// - Threads: the client runs its own libuv loop on a dedicated thread; calls may come from any
///   thread or task. Cancelling a calling task ends that call with `.cancelled`. Tasks that make
///   many calls run cheapest on that thread: give them `executor` as their task executor
///   preference, and each call then costs no thread hand-off (`ClientExecutor`).
/// - `close()` ends every pending call with `.closed`, closes the connection and stops the thread.
///   A client dropped without `close()` shuts down the same way, without waiting.
public final class StarlingClient: Sendable {
    /// The nodes, in the order they are tried.
    public let nodes: [SocketAddress]
    public let configuration: Configuration

    private let mailbox: Mailbox
    /// The client's loop thread as a task executor: tasks that prefer it make their calls without
    /// a thread hand-off (see `ClientExecutor`).
    public let executor: ClientExecutor
    /// Call numbers, and keys for jobs submitted without one, in the connected node's shards
    /// where it holds some.
    private let keys = GeneratedKeys()
    /// The service name last validated: callers submit to few services, and checking a name
    /// character by character costs more than comparing it with the last one.
    private let lastService = Mutex<ServiceName?>(nil)

    /// A client of `nodes`, e.g. `["127.0.0.1:7946", "[::1]:7946"]` (numeric addresses or
    /// `localhost`; no DNS). Nothing is connected until the first call.
    public convenience init(nodes: [String], configuration: Configuration = Configuration()) throws(StarlingClientError) {
        var addresses: [SocketAddress] = []
        for text in nodes {
            do {
                addresses.append(try SocketAddress(parsing: text))
            } catch {
                throw .invalidArgument("node '\(text)' is not HOST:PORT with a numeric host: \(error)")
            }
        }
        try self.init(nodes: addresses, configuration: configuration)
    }

    /// A client of `(host, port)` pairs, e.g. `[("127.0.0.1", 7946)]`.
    public convenience init(nodes: [(host: String, port: UInt16)],
                            configuration: Configuration = Configuration()) throws(StarlingClientError) {
        var addresses: [SocketAddress] = []
        for (host, port) in nodes {
            do {
                addresses.append(try SocketAddress(ip: host, port: port))
            } catch {
                throw .invalidArgument("node '\(host)' is not a numeric address: \(error)")
            }
        }
        try self.init(nodes: addresses, configuration: configuration)
    }

    /// A client of `nodes`; starts the client's loop thread.
    public init(nodes: [SocketAddress], configuration: Configuration = Configuration()) throws(StarlingClientError) {
        guard !nodes.isEmpty else { throw .invalidArgument("no nodes given") }
        if let zero = nodes.first(where: { $0.port == 0 }) { throw .invalidArgument("node \(zero): port 0 cannot be reached") }
        if let problem = configuration.problem { throw .invalidArgument("configuration: \(problem)") }
        self.nodes = nodes
        self.configuration = configuration
        let mailbox = Mailbox()
        self.mailbox = mailbox
        let executor = ClientExecutor(mailbox: mailbox)
        self.executor = executor

        let start = StartSignal()
        let thread = Thread { [keys] in
            ClientEngine.run(mailbox: mailbox, executor: executor, nodes: nodes, configuration: configuration, keys: keys) {
                start.report($0)
            }
        }
        thread.name = "starling-client"
        thread.start()
        if let error = start.wait() {
            mailbox.finish()
            throw .startFailed("\(error)")
        }
    }

    deinit {
        mailbox.requestClose(waiter: nil)
    }

    // MARK: - Calls

    /// Submits a job and waits for its answer. Without a `key` a unique one is generated;
    /// with one, a job already in flight or recently answered under that key is not run again
    /// (the node attaches or replays its answer).
    ///
    /// Throws `StarlingClientError` when no answer could be had (closed, unreachable, timed out,
    /// overloaded, cancelled, invalid arguments); a node's `OK`, `FAIL` and `ERR` are answers.
    public func submit(service: String, payload: [UInt8], key: String? = nil) async throws(StarlingClientError) -> JobAnswer {
        let serviceName: ServiceName
        if let last = lastService.withLock({ $0 }), last.value == service {
            serviceName = last
        } else {
            do { serviceName = try ServiceName(service) } catch { throw .invalidArgument("\(error)") }
            lastService.withLock { $0 = serviceName }
        }
        let id = key == nil ? keys.nextNumber(for: serviceName) : keys.nextNumber()
        let jobKey: JobKey
        do { jobKey = try JobKey(key ?? keys.key(number: id)) } catch { throw .invalidArgument("\(error)") }
        guard payload.count <= configuration.maxPayloadBytes else {
            return .error(code: .tooLarge, message: "payload of \(payload.count) bytes is over the limit of "
                + "\(configuration.maxPayloadBytes) bytes")
        }
        let reply = try await call(id: id) { .submit(id: id, service: serviceName, key: jobKey, payload: payload, reply: $0) }
        guard case .job(let answer) = reply else { preconditionFailure("a job answered with \(reply)") }
        return answer
    }

    /// `PING`: returns once a node answered `PONG`.
    public func ping() async throws(StarlingClientError) {
        let id = keys.nextNumber()
        let reply = try await call(id: id) { .ping(id: id, reply: $0) }
        guard case .pong = reply else { preconditionFailure("a PING answered with \(reply)") }
    }

    /// `STATUS`: the JSON body of a node's answer (its record of the cluster).
    public func status() async throws(StarlingClientError) -> [UInt8] {
        let id = keys.nextNumber()
        let reply = try await call(id: id) { .status(id: id, reply: $0) }
        guard case .status(let json) = reply else { preconditionFailure("a STATUS answered with \(reply)") }
        return json
    }

    /// Ends every pending call with `.closed`, closes the connection and every handle, and
    /// returns once the loop thread has finished. Idempotent; later calls throw `.closed`.
    public func close() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            mailbox.requestClose(waiter: waiter)
        }
    }

    /// Hands a command to the loop thread and waits for its reply; a cancellation of the calling
    /// task is handed over too, always after the command.
    private func call(id: UInt64, _ command: @Sendable (ReplyContinuation) -> Command)
        async throws(StarlingClientError) -> Reply
    {
        let handoff = Handoff()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (reply: ReplyContinuation) in
                let sent = handoff.send {
                    mailbox.send(command(reply))
                }
                switch sent {
                case .sent: break
                case .refused: reply.resume(returning: .failure(.closed))
                case .cancelled: reply.resume(returning: .failure(.cancelled))
                }
            }
        } onCancel: { [mailbox] in
            if handoff.cancel() { _ = mailbox.send(.cancel(id: id)) }
        }
        return try result.get()
    }
}

/// Orders a call's command and its cancellation: a cancel is sent only after the command, and a
/// cancellation that comes first means the command is never sent.
private final class Handoff: Sendable {
    enum Sent { case sent, refused, cancelled }
    private enum State { case pending, sent, cancelled }
    private let state = Mutex(State.pending)

    /// Runs `send` unless already cancelled; `send` returns whether the mailbox took the command.
    func send(_ send: () -> Bool) -> Sent {
        state.withLock { state in
            guard case .pending = state else { return .cancelled }
            guard send() else { return .refused }
            state = .sent
            return .sent
        }
    }

    /// Marks the call cancelled; true when its command was already sent (so a cancel must follow).
    func cancel() -> Bool {
        state.withLock { state in
            defer { state = .cancelled }
            if case .sent = state { return true }
            return false
        }
    }
}

/// How the loop thread tells `init` that its loop is up (or why not).
private final class StartSignal: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let error = Mutex<UVError?>(nil)

    func report(_ error: UVError?) {
        self.error.withLock { $0 = error }
        semaphore.signal()
    }

    /// Blocks until `report` has run; the loop thread reports within microseconds.
    func wait() -> UVError? {
        semaphore.wait()
        return error.withLock { $0 }
    }
}
