import Logging
import StarlingCore
import StarlingUV

/// Takes the connections the shared port accepts, reads each one's first bytes until
/// `ConnectionRouter` names its protocol, and hands it, with every byte read so far, to `onRouted`.
///
/// It also holds the server to `ConnectionLimits` (`limit(_:)`): a connection accepted while
/// `maxConnections` are open, or while the process is out of descriptors, is answered
/// `ERR - BUSY too many connections` and closed by the server, counted (`connection_limit`) and
/// logged once per interval (`ConnectionRefusalLog`). While it waits a connection holds at most
/// `ConnectionRouter.maxPrefixBytes` bytes plus one read, and for at most `routeTimeoutMs`: a
/// connection that has not named its protocol by then is closed and counted (`route_timeout`), as
/// is one that ends before it is routed or that no recogniser takes. Loop-confined.
final class ConnectionAcceptor {
    /// What a refused connection reads before it is closed.
    static let refusal = ClientResponse.error(key: nil, code: .busy, message: "too many connections")

    private let router: ConnectionRouter
    private let limits: ConnectionLimits
    private let loop: EventLoop
    private let logger: Logger
    private let rejections: RejectionRecorder
    private let ioProblems: RejectionRecorder
    /// Connections still being read to learn their protocol.
    private var unrouted: Set<UnroutedConnection> = []
    private var refusals = ConnectionRefusalLog()
    /// Closes unrouted connections past their time; made with the first connection.
    private var sweeper: Timer?
    private var isClosed = false
    /// Where a routed connection goes; the handler reads on from the bytes it is given. Until it is
    /// set (the server listens before its owner is complete), connections are closed.
    var onRouted: (ConnectionProtocol, TCPStream, [UInt8]) -> Void = { _, stream, _ in stream.close() }

    init(router: ConnectionRouter, limits: ConnectionLimits, loop: EventLoop, logger: Logger,
         rejections: RejectionRecorder, ioProblems: RejectionRecorder) {
        self.router = router
        self.limits = limits
        self.loop = loop
        self.logger = logger
        self.rejections = rejections
        self.ioProblems = ioProblems
    }

    /// Holds `server` to the cap: it refuses connections beyond it with the BUSY line.
    func limit(_ server: TCPServer) {
        server.maxConnections = limits.maxConnections
        let descriptors = ConnectionLimits.descriptorLimit()
        if limits.maxConnections > ConnectionLimits.defaultMaxConnections(descriptorLimit: descriptors) {
            // Still answered (BUSY at EMFILE), but the process's own sockets and pipes may fail first.
            logger.warning(
                "--max-connections \(limits.maxConnections) leaves less than the reserve of \(ConnectionLimits.descriptorReserve(forLimit: descriptors)) below the descriptor limit (ulimit -n) of \(descriptors): peer links and job pipes may fail for want of descriptors")
        }
        var line: [UInt8] = []
        Self.refusal.encode(into: &line)
        server.refusalMessage = line
        server.onRefused = { [unowned self] refusal in
            rejections.count("connection_limit")
            refusals.refused(refusal, nowMs: nowMs, logger: logger)
        }
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
        startSweeping()
        let connection = UnroutedConnection(stream: stream, acceptedAtMs: nowMs)
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
        sweeper?.close()
        for connection in unrouted { connection.stream.close() }
        unrouted = []
    }

    private var nowMs: Int64 { Int64(clamping: loop.now) }

    /// Checks a quarter of the timeout apart (at most once a second), so a connection is closed
    /// within 1.25 timeouts (a second more for long ones) whatever their number, with one timer.
    private func startSweeping() {
        guard sweeper == nil else { return }
        do {
            let timer = try Timer(loop: loop)
            sweeper = timer
            let period = UInt64(min(1_000, max(10, limits.routeTimeoutMs / 4)))
            try timer.start(afterMs: period, repeatMs: period) { [unowned self] in sweep() }
        } catch {
            ioProblems.record("timer", detail: "no timer for the route timeout: \(error)", level: .error)
        }
    }

    private func sweep() {
        let now = nowMs
        refusals.flush(nowMs: now, logger: logger)
        for connection in unrouted where now - connection.acceptedAtMs >= limits.routeTimeoutMs {
            rejections.record(
                "route_timeout",
                detail: "\(Self.remote(connection.stream)) named no protocol within \(limits.routeTimeoutMs) ms "
                    + "(\(connection.bytes.count) bytes): closed",
                level: .notice)
            drop(connection)
        }
    }

    private func drop(_ connection: UnroutedConnection) {
        unrouted.remove(connection)
        connection.stream.close()
    }

    static func remote(_ stream: TCPStream) -> String {
        (try? stream.peerAddress).map { "\($0)" } ?? "a connection"
    }
}

/// A connection whose protocol is not known yet, with what it has sent so far.
private final class UnroutedConnection: Hashable {
    let stream: TCPStream
    let acceptedAtMs: Int64
    var bytes: [UInt8] = []

    init(stream: TCPStream, acceptedAtMs: Int64) {
        self.stream = stream
        self.acceptedAtMs = acceptedAtMs
    }

    static func == (lhs: UnroutedConnection, rhs: UnroutedConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
