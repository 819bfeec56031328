import StarlingUV

/// Takes the connections the shared port accepts, reads each one's first bytes until
/// `ConnectionRouter` names its protocol, and hands it, with every byte read so far, to `onRouted`.
///
/// While it waits a connection holds at most `ConnectionRouter.maxPrefixBytes` bytes plus one read.
/// A connection that ends before it is routed, or that no recogniser takes, is closed. There is no
/// time limit, as for a routed connection that sends nothing: one that stalls holds its handle
/// until it closes or the process stops (`close()`). Loop-confined.
final class ConnectionAcceptor {
    private let router: ConnectionRouter
    private let rejections: RejectionRecorder
    private let ioProblems: RejectionRecorder
    /// Connections still being read to learn their protocol.
    private var unrouted: Set<UnroutedConnection> = []
    private var isClosed = false
    /// Where a routed connection goes; the handler reads on from the bytes it is given. Until it is
    /// set (the server listens before its owner is complete), connections are closed.
    var onRouted: (ConnectionProtocol, TCPStream, [UInt8]) -> Void = { _, stream, _ in stream.close() }

    init(router: ConnectionRouter, rejections: RejectionRecorder, ioProblems: RejectionRecorder) {
        self.router = router
        self.rejections = rejections
        self.ioProblems = ioProblems
    }

    /// A connection from the server (or why none could be accepted).
    func accept(_ result: Result<TCPStream, UVError>) {
        let stream: TCPStream
        switch result {
        case .success(let accepted): stream = accepted
        case .failure(let error):
            ioProblems.record("accept", detail: "\(error)", level: .warning)
            return
        }
        guard !isClosed else {
            stream.close()
            return
        }
        let connection = UnroutedConnection(stream: stream)
        unrouted.insert(connection)
        do {
            try stream.startReading { [unowned self] event in
                guard case .bytes(let bytes) = event else {
                    drop(connection)
                    return
                }
                connection.bytes += bytes
                switch router.classify(connection.bytes) {
                case .waitForMoreBytes:
                    break
                case .route(let kind):
                    stream.stopReading()
                    unrouted.remove(connection)
                    onRouted(kind, stream, connection.bytes)
                case .unrecognised:
                    rejections.record(
                        "unknown_protocol", detail: "a connection starting with \(connection.bytes.prefix(8)) speaks no known protocol",
                        level: .notice)
                    drop(connection)
                }
            }
        } catch {
            drop(connection)
        }
    }

    /// Closes the connections not routed yet and every one accepted from now on (stopping).
    func close() {
        isClosed = true
        for connection in unrouted { connection.stream.close() }
        unrouted = []
    }

    private func drop(_ connection: UnroutedConnection) {
        unrouted.remove(connection)
        connection.stream.close()
    }
}

/// A connection whose protocol is not known yet, with what it has sent so far.
private final class UnroutedConnection: Hashable {
    let stream: TCPStream
    var bytes: [UInt8] = []

    init(stream: TCPStream) {
        self.stream = stream
    }

    static func == (lhs: UnroutedConnection, rhs: UnroutedConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
