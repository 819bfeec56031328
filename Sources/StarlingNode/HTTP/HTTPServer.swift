import Logging
import StarlingCore
import StarlingUV

/// The bounds of the `--http` server (README, "HTTP"): what a connection may send and for how long.
public struct HTTPLimits: Sendable, Equatable {
    /// Open HTTP connections; one more is answered 503 and closed.
    public var maxConnections = 64
    /// Request line and headers of one request.
    public var maxHeadBytes = 16 * 1024
    /// No endpoint takes a body: a request with one is refused (413).
    public var maxBodyBytes = 0
    /// From a request's first byte to its end: a slow or endless sender is answered 408 and closed.
    public var requestTimeoutMs: UInt64 = 10_000
    /// A kept-alive connection with no request for this long is closed.
    public var idleTimeoutMs: UInt64 = 60_000
    /// Answers queued for a client that does not read them: past this, its requests stop being read.
    public var maxQueuedBytes = 4 << 20

    public init() {}
}

/// A small HTTP/1.1 server on the process's own libuv loop, for the operator's endpoints
/// (`--http`): no thread or loop of its own. It parses with `HTTPRequestParser`, answers `GET`
/// and `HEAD` through `route` (anything else 405), keeps connections alive, and holds every
/// connection to `HTTPLimits`; each refusal is counted in the process's rejections (`http_*`).
/// Loop-confined.
final class HTTPServer {
    /// The bound address.
    let address: NodeAddress

    private let server: TCPServer
    private let loop: EventLoop
    private let limits: HTTPLimits
    private let rejections: RejectionRecorder
    /// Answers a `GET` or `HEAD`; set by the owner once it can be captured.
    var route: (HTTPRequest) -> HTTPResponse = { _ in .text(503, "starting") }
    private var connections: Set<HTTPConnection> = []
    private let sweeper: Timer
    private var isClosed = false

    init(
        at requested: NodeAddress, loop: EventLoop, limits: HTTPLimits, rejections: RejectionRecorder
    ) throws(UVError) {
        server = try TCPServer(loop: loop)
        do {
            sweeper = try Timer(loop: loop)
        } catch {
            server.close()
            throw error
        }
        // Set to this server once it is whole; the listen callback reads it through the capture.
        var accepted: (TCPStream) -> Void = { $0.close() }
        do {
            try server.bind(to: requested.socketAddress)
            address = NodeAddress(try server.localAddress)
            // Listening before the process says where it listens; connections wait for the loop.
            try server.listen { result in
                guard case .success(let stream) = result else { return }
                accepted(stream)
            }
        } catch {
            server.close()
            sweeper.close()
            throw error
        }
        self.loop = loop
        self.limits = limits
        self.rejections = rejections
        server.maxConnections = limits.maxConnections
        server.refusalMessage = HTTPResponse.text(503, "too many connections").encoded(keepAlive: false)
        server.onRefused = { _ in rejections.count("http_connection_limit") }
        accepted = { [unowned self] in self.accepted($0) }
    }

    /// Starts the timer that enforces the timeouts.
    func start() throws(UVError) {
        let period = max(10, min(1_000, limits.requestTimeoutMs / 4))
        try sweeper.start(afterMs: period, repeatMs: period) { [unowned self] in sweep() }
    }

    /// Stops listening and closes every connection.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        server.close()
        sweeper.close()
        for connection in connections { connection.stream.close() }
        connections = []
    }

    private func accepted(_ stream: TCPStream) {
        guard !isClosed else { return stream.close() }
        let connection = HTTPConnection(
            stream: stream, parser: HTTPRequestParser(maxHeadBytes: limits.maxHeadBytes, maxBodyBytes: limits.maxBodyBytes),
            nowMs: loop.now)
        connections.insert(connection)
        startReading(connection)
    }

    private func startReading(_ connection: HTTPConnection) {
        connection.isPaused = false
        do {
            try connection.stream.startReading { [unowned self, unowned connection] event in
                switch event {
                case .bytes(let bytes): received(bytes, on: connection)
                case .endOfFile, .failed: drop(connection)
                }
            }
        } catch {
            drop(connection)
        }
    }

    private func received(_ bytes: [UInt8], on connection: HTTPConnection) {
        guard !connection.isClosing else { return }
        if connection.requestStartedMs == nil { connection.requestStartedMs = loop.now }
        let (requests, problem) = connection.parser.feed(bytes)
        for request in requests {
            answer(request, on: connection)
            if connection.isClosing { return }
        }
        if let problem {
            refuse(connection, problem)
            return
        }
        if !connection.parser.isMidRequest {
            connection.requestStartedMs = nil
            connection.lastActivityMs = loop.now
        }
        // A client that sends requests but does not read the answers stops being read.
        if connection.stream.writeQueueSize > limits.maxQueuedBytes {
            connection.stream.stopReading()
            connection.isPaused = true
        }
    }

    private func answer(_ request: HTTPRequest, on connection: HTTPConnection) {
        let response: HTTPResponse
        switch request.method {
        case "GET", "HEAD":
            response = route(request)
        default:
            rejections.record("http_method", detail: "HTTP \(request.method) \(request.path.prefix(64)): only GET and HEAD", level: .info)
            var refusal = HTTPResponse.text(405, "only GET and HEAD")
            refusal.headers = [("Allow", "GET, HEAD")]
            response = refusal
        }
        send(response.encoded(keepAlive: request.keepAlive, omitBody: request.method == "HEAD"),
             on: connection, thenClose: !request.keepAlive)
    }

    private func refuse(_ connection: HTTPConnection, _ problem: HTTPRequestProblem) {
        let response: HTTPResponse
        switch problem {
        case .malformed(let why):
            rejections.record("http_bad_request", detail: "HTTP request from \(remote(connection)): \(why)", level: .info)
            response = .text(400, "bad request")
        case .headTooLarge(let limit):
            rejections.record("http_head_too_large", detail: "HTTP request head from \(remote(connection)) over \(limit) bytes", level: .info)
            response = .text(431, "request line and headers over \(limit) bytes")
        case .bodyTooLarge(let limit):
            rejections.record("http_body_too_large", detail: "HTTP request body from \(remote(connection)) over \(limit) bytes", level: .info)
            response = .text(413, "no endpoint takes a request body over \(limit) bytes")
        }
        send(response.encoded(keepAlive: false), on: connection, thenClose: true)
    }

    private func send(_ bytes: [UInt8], on connection: HTTPConnection, thenClose: Bool) {
        if thenClose { connection.isClosing = true }
        let stream = connection.stream
        do {
            try stream.write(bytes: bytes) { [weak self, weak connection] _ in
                guard let self, let connection else { return }
                if connection.isClosing {
                    if stream.writeQueueSize == 0 { drop(connection) }
                } else if connection.isPaused, stream.writeQueueSize <= limits.maxQueuedBytes / 2, !stream.isClosed {
                    startReading(connection)
                }
            }
        } catch {
            drop(connection)
        }
    }

    /// Answers 408 to requests past their time and closes connections idle past theirs.
    private func sweep() {
        let now = loop.now
        for connection in connections where !connection.isClosing {
            if let started = connection.requestStartedMs {
                guard now >= started, now - started >= limits.requestTimeoutMs else { continue }
                rejections.record(
                    "http_request_timeout",
                    detail: "HTTP request from \(remote(connection)) not complete within \(limits.requestTimeoutMs) ms",
                    level: .info)
                send(HTTPResponse.text(408, "request not complete within \(limits.requestTimeoutMs) ms").encoded(keepAlive: false),
                     on: connection, thenClose: true)
            } else if now >= connection.lastActivityMs, now - connection.lastActivityMs >= limits.idleTimeoutMs {
                drop(connection)
            }
        }
    }

    private func drop(_ connection: HTTPConnection) {
        connections.remove(connection)
        connection.stream.close()
    }

    private func remote(_ connection: HTTPConnection) -> String {
        ConnectionAcceptor.remote(connection.stream)
    }
}

/// One accepted HTTP connection and where its current request stands.
private final class HTTPConnection: Hashable {
    let stream: TCPStream
    let parser: HTTPRequestParser
    /// When the request now being read began (its first byte); nil between requests.
    var requestStartedMs: UInt64?
    /// When the last request ended (or the connection opened): the idle timeout counts from here.
    var lastActivityMs: UInt64
    /// Its last answer is going out; it reads nothing more and closes once that is written.
    var isClosing = false
    /// Not read while its answers wait for the client to read them.
    var isPaused = false

    init(stream: TCPStream, parser: HTTPRequestParser, nowMs: UInt64) {
        self.stream = stream
        self.parser = parser
        lastActivityMs = nowMs
    }

    static func == (lhs: HTTPConnection, rhs: HTTPConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
