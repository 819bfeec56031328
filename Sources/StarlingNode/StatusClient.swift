import StarlingCore
import StarlingUV

/// Asks a worker for its `STATUS` over TCP: a small blocking client for the CLI and tests.
///
/// With a `token` it sends `AUTH <token>` first and `STATUS` right after it (docs/PROTOCOL.md,
/// "Authentication"); a node that refuses the token answers `ERR - UNAUTHORIZED`, reported as
/// `.errorReply`.
///
/// It runs its own event loop for the one exchange, so it must not be called from a worker's loop.
public enum StatusClient {
    /// Why no status came back; the description is meant for an operator.
    public enum Failure: Error, CustomStringConvertible {
        case refused(NodeAddress)
        case timedOut(NodeAddress, ms: UInt64)
        case closedEarly(NodeAddress)
        case errorReply(String)
        case malformedReply(String)
        case io(UVError)

        public var description: String {
            switch self {
            case .refused(let address): "connection refused: is a worker listening on \(address)?"
            case .timedOut(let address, let ms): "no answer from \(address) within \(ms) ms"
            case .closedEarly(let address): "\(address) closed the connection before answering"
            case .errorReply(let line): "the worker answered: \(line)"
            case .malformedReply(let why): "malformed answer: \(why)"
            case .io(let error): "\(error)"
            }
        }
    }

    /// The largest STATUS body accepted (a record of thousands of members fits).
    public static let maxBodyBytes = 16 << 20

    /// Fetches and decodes the worker's report.
    public static func fetch(
        from address: NodeAddress, timeoutMs: UInt64 = 3_000, token: ClientToken? = nil
    ) throws(Failure) -> StatusReport {
        let body = try fetchJSON(from: address, timeoutMs: timeoutMs, token: token)
        do {
            return try StatusReport(json: body)
        } catch {
            throw .malformedReply("\(error)")
        }
    }

    /// Fetches the raw JSON body of the worker's `STATUS` answer.
    public static func fetchJSON(
        from address: NodeAddress, timeoutMs: UInt64 = 3_000, token: ClientToken? = nil
    ) throws(Failure) -> [UInt8] {
        let loop: EventLoop
        do { loop = try EventLoop() } catch { throw .io(error) }
        let exchange = Exchange(address: address)
        var request: [UInt8] = []
        if let token { ClientRequest.auth(token: token).encode(into: &request) }
        ClientRequest.status.encode(into: &request)
        let stream: TCPStream
        do {
            stream = try TCPStream(loop: loop)
        } catch {
            try? loop.close()
            throw .io(error)
        }
        do throws(UVError) {
            try stream.connect(to: address.socketAddress) { error in
                if let error { return exchange.fail(error) }
                do throws(UVError) {
                    try stream.startReading { exchange.read($0) }
                    try stream.write(bytes: request) { error in
                        if let error { exchange.fail(error) }
                    }
                } catch {
                    exchange.fail(error)
                }
            }
            _ = try loop.run(until: { exchange.outcome != nil }, timeoutMs: timeoutMs)
        } catch {
            exchange.fail(error)
        }
        // Decided before closing: closing cancels a pending connect, whose callback must not count.
        let outcome = exchange.outcome
        exchange.outcome = outcome ?? .failure(.timedOut(address, ms: timeoutMs))
        stream.close()
        try? loop.close()
        switch outcome {
        case .success(let body): return body
        case .failure(let failure): throw failure
        case nil: throw .timedOut(address, ms: timeoutMs)
        }
    }
}

/// The state of one STATUS exchange, filled in by loop callbacks.
private final class Exchange {
    let address: NodeAddress
    var decoder = ClientResponseDecoder(maxBodyBytes: StatusClient.maxBodyBytes)
    var outcome: Result<[UInt8], StatusClient.Failure>?

    init(address: NodeAddress) { self.address = address }

    func fail(_ error: UVError) {
        guard outcome == nil else { return }
        outcome = .failure(error.name == "ECONNREFUSED" ? .refused(address) : .io(error))
    }

    func read(_ event: StreamReadEvent) {
        guard outcome == nil else { return }
        switch event {
        case .bytes(let bytes):
            decoder.append(bytes)
            take()
        case .endOfFile:
            take()
            if outcome == nil { outcome = .failure(.closedEarly(address)) }
        case .failed(let error):
            fail(error)
        }
    }

    /// The first answer after `WELCOME` decides: `STATUS <n>` and its JSON, or an `ERR`.
    private func take() {
        var next = decoder.next()
        if case .response(.welcome) = next { next = decoder.next() }
        guard let item = next else { return }
        switch item {
        case .response(.status(let json)):
            outcome = .success(json)
        case .response(let answer):
            if case .error = answer {
                outcome = .failure(.errorReply(answer.summary))
            } else {
                outcome = .failure(.malformedReply("a \(answer.summary) answer to STATUS"))
            }
        case .error(let failure):
            outcome = .failure(.malformedReply(failure.description))
        }
    }
}
