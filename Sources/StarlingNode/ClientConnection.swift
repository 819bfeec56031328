import StarlingCore
import StarlingUV

/// One TCP client of a worker: decodes requests, answers them in order, and applies backpressure.
///
/// Requests are read only while the client's unsent answers stay under `maxBacklogBytes`, so a
/// client that sends without reading holds at most that much memory plus the decoder's bound.
final class ClientConnection {
    private let stream: TCPStream
    private var decoder = ClientRequestDecoder()
    private let maxBacklogBytes: Int
    private let answer: (ClientRequest) -> ClientResponse
    private let reject: (ClientProtocolError) -> Void
    private let onClosed: (ClientConnection) -> Void
    private var isReading = false
    private var isFinishing = false
    private var isClosed = false

    init(
        stream: TCPStream, maxBacklogBytes: Int, answer: @escaping (ClientRequest) -> ClientResponse,
        reject: @escaping (ClientProtocolError) -> Void, onClosed: @escaping (ClientConnection) -> Void
    ) {
        self.stream = stream
        self.maxBacklogBytes = maxBacklogBytes
        self.answer = answer
        self.reject = reject
        self.onClosed = onClosed
    }

    /// Starts reading; the connection keeps itself alive through its stream's callbacks until closed.
    func start() {
        resumeReading()
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
        do {
            try stream.shutdown { [self] _ in close() }
        } catch {
            close()
        }
    }

    private func resumeReading() {
        guard !isReading, !isFinishing, !isClosed else { return }
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
            finish()
        case .failed:
            close()
        }
    }

    /// Answers every complete request, unless the client is not reading its answers.
    private func drain() {
        while !isFinishing, !isClosed, stream.writeQueueSize < maxBacklogBytes, let item = decoder.next() {
            switch item {
            case .request(let request):
                send(answer(request))
            case .error(let error):
                reject(error)
                send(error.response)
                if error.isFatal {
                    finish()
                    return
                }
            }
        }
        if stream.writeQueueSize >= maxBacklogBytes, isReading {
            stream.stopReading()
            isReading = false
        }
    }

    private func send(_ response: ClientResponse) {
        do {
            try stream.write(bytes: response.encode()) { [self] error in
                if error != nil {
                    close()
                } else if !isReading, !isFinishing, !isClosed, stream.writeQueueSize < maxBacklogBytes / 2 {
                    drain()
                    resumeReading()
                }
            }
        } catch {
            close()
        }
    }
}

extension ClientConnection: Hashable {
    static func == (lhs: ClientConnection, rhs: ClientConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
