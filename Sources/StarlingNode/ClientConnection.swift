import StarlingCore
import StarlingUV

/// One TCP client of a worker: decodes requests, answers them, and applies backpressure.
///
/// `PING` and `STATUS` are answered at once; a `SUBMIT` is answered later, through `deliver`, when
/// its job ends, so answers come in completion order (pipelining). Answers are encoded into one
/// outbox and written with one write per loop iteration (`EventLoop.soon`), however many jobs
/// ended in it. Requests are read only while the client's unsent answers stay under
/// `maxBacklogBytes`, so a client that sends without reading holds at most that much memory plus
/// the decoder's bound.
///
/// Every decoded item first goes through the connection's `ClientAuthentication`: where the
/// process has client tokens, nothing but an accepted `AUTH` is handled until `WELCOME`, and a
/// refusal is answered `ERR - UNAUTHORIZED` and the connection closed once it is written
/// (docs/PROTOCOL.md, "Authentication").
///
/// The connection keeps the time it last completed a request or was answered (`lastActivityMs`),
/// so that its handler can close it once idle: nothing in flight and no request for a while.
final class ClientConnection {
    let id: ClientID
    private let stream: TCPStream
    /// Payloads up to the hard bound of `max_payload_bytes` (the decoder's default): their
    /// services' primaries apply the services' own limits.
    private var decoder = ClientRequestDecoder()
    private let maxBacklogBytes: Int
    /// Answers encoded and not yet handed to the stream; written by `flush()`.
    private var outbox: [UInt8] = []
    private var isFlushScheduled = false
    /// The answer to a request, or nil when it will come later through `deliver`.
    private let answer: (ClientRequest, ClientID) -> ClientResponse?
    private let reject: (ClientProtocolError) -> Void
    private var authentication: ClientAuthentication
    /// Whether the process's current tokens take a token (true for every token without tokens).
    private let accepts: (ClientToken) -> Bool
    /// Counts and logs a refusal; the detail never holds a token.
    private let refuseAuthentication: (String) -> Void
    private let onClosed: (ClientConnection) -> Void
    private var isReading = false
    /// Jobs submitted here whose answers have not come yet.
    private var awaited: Set<JobKey> = []
    /// The client finished sending: close once every awaited answer is written.
    private var finishWhenAnswered = false
    private var isFinishing = false
    private var isClosed = false
    /// When the connection opened, last completed a request, or was last answered (loop time).
    private(set) var lastActivityMs: UInt64

    init(
        id: ClientID, stream: TCPStream, maxBacklogBytes: Int,
        answer: @escaping (ClientRequest, ClientID) -> ClientResponse?,
        reject: @escaping (ClientProtocolError) -> Void,
        authentication: ClientAuthentication = ClientAuthentication(required: false),
        accepts: @escaping (ClientToken) -> Bool = { _ in true },
        refuseAuthentication: @escaping (String) -> Void = { _ in },
        onClosed: @escaping (ClientConnection) -> Void
    ) {
        self.id = id
        self.authentication = authentication
        self.accepts = accepts
        self.refuseAuthentication = refuseAuthentication
        self.stream = stream
        self.maxBacklogBytes = maxBacklogBytes
        self.answer = answer
        self.reject = reject
        self.onClosed = onClosed
        lastActivityMs = stream.loop.now
    }

    /// Whether the client waits for answers to jobs: then it is never idle, however long they take.
    var isAwaitingAnswers: Bool { !awaited.isEmpty }

    /// Starts reading, with any bytes already read; the connection keeps itself alive through its
    /// stream's callbacks until closed.
    func start(initialBytes: [UInt8] = []) {
        // Answers are already batched per loop iteration; Nagle would only hold them back.
        try? stream.setNoDelay(true)
        decoder.append(initialBytes)
        drain()
        resumeReading()
    }

    /// A later answer (a job's outcome).
    func deliver(_ response: ClientResponse) {
        guard !isClosed, !isFinishing else { return }
        send(response)
        if let key = response.key { awaited.remove(key) }
        if finishWhenAnswered && awaited.isEmpty {
            finish()
        } else if unsentBytes >= maxBacklogBytes, isReading {
            stream.stopReading()
            isReading = false
        }
    }

    /// Answers once without reading anything, then closes (e.g. too many clients).
    func refuse(_ response: ClientResponse) {
        send(response)
        finish()
    }

    /// Closes at once, dropping unsent answers (worker shutdown).
    func close() {
        guard !isClosed else { return }
        isClosed = true
        stream.close()
        onClosed(self)
    }

    /// Sends what is queued, then closes (end of input or an unrecoverable request).
    func finish() {
        guard !isFinishing, !isClosed else { return }
        isFinishing = true
        stream.stopReading()
        isReading = false
        flush()
        do {
            try stream.shutdown { [self] _ in close() }
        } catch {
            close()
        }
    }

    private func resumeReading() {
        guard !isReading, !isFinishing, !isClosed, !finishWhenAnswered else { return }
        do {
            try stream.startReading { [self] event in handle(event) }
            isReading = true
        } catch {
            close()
        }
    }

    private func handle(_ event: StreamReadEvent) {
        switch event {
        case .bytes(let bytes):
            decoder.append(bytes)
            drain()
        case .endOfFile:
            isReading = false
            drain()
            if awaited.isEmpty { finish() } else { finishWhenAnswered = true }
        case .failed:
            close()
        }
    }

    /// Answers every complete request, unless the client is not reading its answers.
    private func drain() {
        while !isFinishing, !isClosed, unsentBytes < maxBacklogBytes, let decoded = decoder.next() {
            lastActivityMs = stream.loop.now
            let item: ClientRequestDecoder.Decoded
            switch authentication.step(decoded, accepts: accepts) {
            case .handle(let passed):
                item = passed
            case .welcome:
                send(.welcome)
                continue
            case .refuse(let answer, let detail):
                refuseAuthentication(detail)
                send(answer)
                finish()
                return
            }
            switch item {
            case .request(let request):
                // Before asking: the answer may come through `deliver` while we ask.
                if case .submit(_, let key, _) = request { awaited.insert(key) }
                if let response = answer(request, id) { send(response) }
            case .error(let error):
                reject(error)
                send(error.response)
                if error.isFatal {
                    finish()
                    return
                }
            }
        }
        if unsentBytes >= maxBacklogBytes, isReading {
            stream.stopReading()
            isReading = false
        }
    }

    /// Answers not yet written to the kernel: the outbox and the stream's write queue.
    private var unsentBytes: Int { outbox.count + stream.writeQueueSize }

    /// Queues an answer; the outbox goes out once this loop iteration's callbacks are done.
    private func send(_ response: ClientResponse) {
        guard !isClosed else { return }
        lastActivityMs = stream.loop.now
        response.encode(into: &outbox)
        guard !isFlushScheduled else { return }
        isFlushScheduled = true
        stream.loop.soon { [self] in flush() }
    }

    /// Writes the outbox in one write.
    private func flush() {
        isFlushScheduled = false
        guard !outbox.isEmpty, !isClosed else { return }
        // The stream copies the bytes, so the outbox is emptied in place afterwards; a large
        // answer's buffer is not kept for the small ones that follow.
        defer {
            if outbox.capacity > 64 * 1024 {
                outbox = []
            } else {
                outbox.removeAll(keepingCapacity: true)
            }
        }
        do {
            try stream.write(bytes: outbox) { [self] error in
                if error != nil {
                    close()
                } else if !isReading, !isFinishing, !isClosed, unsentBytes < maxBacklogBytes / 2 {
                    drain()
                    resumeReading()
                }
            }
        } catch {
            close()
        }
    }
}

extension ClientResponse {
    /// The job key an answer is about, if any.
    var key: JobKey? {
        switch self {
        case .ok(let key, _), .fail(let key, _): key
        case .error(let key, _, _): key
        case .pong, .welcome, .status, .shards: nil
        }
    }
}

extension ClientConnection: Hashable {
    static func == (lhs: ClientConnection, rhs: ClientConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
