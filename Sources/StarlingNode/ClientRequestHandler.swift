import Logging
import StarlingCore
import StarlingUV

/// The clients of one process (docs/PROTOCOL.md): admits their connections (the cap on connections
/// is the server's, `ConnectionAcceptor.limit`), closes those idle for `clientIdleTimeoutMs`, has
/// them authenticate where the process has client tokens (`ClientAuthentication`), answers
/// `PING`, `STATUS` and `SHARDS` at once, and hands each `SUBMIT` to the job plane, whose answers
/// come back through `deliver`. Loop-confined.
final class ClientRequestHandler {
    private let selfID: NodeID
    private let loop: EventLoop
    private let idleTimeoutMs: Int64
    private let maxBacklogBytes: Int
    private let jobs: JobPlane
    /// The process's record, read for `STATUS`.
    private let record: () -> Membership
    private let rejections: RejectionRecorder
    private let secrets: NodeSecrets
    private let logger: Logger
    private var clients: [ClientID: ClientConnection] = [:]
    private var nextClientID: ClientID = 1
    private var isDraining = false
    /// Closes idle clients; made with the first client.
    private var sweeper: Timer?

    init(
        selfID: NodeID, loop: EventLoop, settings: WorkerSettings, secrets: NodeSecrets, jobs: JobPlane,
        rejections: RejectionRecorder,
        logger: Logger, record: @escaping () -> Membership
    ) {
        self.selfID = selfID
        self.loop = loop
        idleTimeoutMs = settings.connections.clientIdleTimeoutMs
        maxBacklogBytes = settings.maxClientBacklogBytes
        self.jobs = jobs
        self.rejections = rejections
        self.secrets = secrets
        self.logger = logger
        self.record = record
    }

    /// A new client connection, with the bytes already read while routing it.
    func accept(_ stream: TCPStream, initialBytes: [UInt8]) {
        let id = nextClientID
        nextClientID += 1
        let connection = ClientConnection(
            id: id, stream: stream, maxBacklogBytes: maxBacklogBytes,
            answer: { [unowned self] in answer($0, client: $1) },
            reject: { [unowned self] in rejectInput($0) },
            // Whether this connection must authenticate is decided now; the token of its `AUTH`
            // is checked against the tokens loaded when it comes (SIGHUP reloads them), and a
            // connection authenticated before a reload stays so.
            authentication: ClientAuthentication(required: secrets.clientTokens != nil),
            accepts: { [unowned self] token in secrets.clientTokens?.accepts(token) ?? true },
            refuseAuthentication: { [unowned self] detail in
                rejections.record(ClientAuthentication.reason, detail: "client: \(detail)", level: .notice)
            },
            onClosed: { [unowned self] in
                clients[$0.id] = nil
                jobs.clientGone($0.id)
            })
        clients[id] = connection
        startSweeping()
        if isDraining {
            connection.refuse(.error(key: nil, code: .unavailable, message: "this worker is draining; connect to another"))
        } else {
            connection.start(initialBytes: initialBytes)
        }
    }

    /// A job's answer, for the client that submitted it (if still connected).
    func deliver(_ response: ClientResponse, to client: ClientID) {
        clients[client]?.deliver(response)
    }

    /// New clients are told `UNAVAILABLE`; connected ones keep their connections.
    func drain() {
        isDraining = true
    }

    /// Sends every client what is queued for it, then closes (stopping).
    func finishAll() {
        sweeper?.close()
        for client in clients.values { client.finish() }
    }

    /// Checks a quarter of the timeout apart (at most once a second): one timer for every client.
    private func startSweeping() {
        guard sweeper == nil else { return }
        do {
            let timer = try Timer(loop: loop)
            sweeper = timer
            let period = UInt64(min(1_000, max(10, idleTimeoutMs / 4)))
            try timer.start(afterMs: period, repeatMs: period) { [unowned self] in closeIdle() }
        } catch {
            logger.error("no timer for the client idle timeout: \(error)")
        }
    }

    /// Closes the clients with nothing in flight that completed no request, and were answered
    /// nothing, for `idleTimeoutMs`: a silent connection must not hold a place under the cap.
    private func closeIdle() {
        let now = loop.now
        let idle = clients.values.filter { client in
            !client.isAwaitingAnswers && now >= client.lastActivityMs && now - client.lastActivityMs >= UInt64(idleTimeoutMs)
        }
        for client in idle {
            rejections.record(
                "client_idle",
                detail: "client \(client.id) completed no request for \(idleTimeoutMs) ms with nothing in flight: closed",
                level: .info)
            client.close()
        }
    }

    private func answer(_ request: ClientRequest, client: ClientID) -> ClientResponse? {
        switch request {
        case .auth:
            // `ClientAuthentication` answers every AUTH before requests reach here; were one to
            // slip through, it fails closed, and no input can stop the process.
            return .error(key: nil, code: .badRequest, message: "AUTH is answered by the connection")
        case .ping:
            return .pong
        case .status:
            let nowMs = Int64(clamping: loop.now)
            let membership = record()
            let report = StatusReport(
                selfID: selfID, members: Array(membership.members.values) + [membership.selfMember(nowMs: nowMs)],
                nowMs: nowMs, rejected: rejections.counts,
                scaler: membership.primary(of: .agent, nowMs: nowMs)?.id)
            do {
                return .status(json: try report.jsonBytes())
            } catch {
                logger.error("cannot encode STATUS: \(error)")
                return .error(key: nil, code: .unavailable, message: "status could not be encoded")
            }
        case .shards:
            return jobs.shardsAnswer
        case .submit(let service, let key, let payload):
            jobs.submit(service: service, key: key, payload: payload, client: client, nowMs: Int64(clamping: loop.now))
            return nil
        }
    }

    private func rejectInput(_ error: ClientProtocolError) {
        rejections.record(error.reason, detail: "client: \(error)", level: .notice)
    }
}
