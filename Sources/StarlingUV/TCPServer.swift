import CLibUV

/// A listening TCP socket that hands each accepted connection over as a `TCPStream`. Loop-confined.
public final class TCPServer {
    private let context: ServerContext

    /// Creates an unbound server; accepted streams read at most `readBufferSize` bytes per event.
    public init(loop: EventLoop, readBufferSize: Int = StreamHandle.defaultReadBufferSize) throws(UVError) {
        try uvCheck(readBufferSize > 0 ? 0 : UVCode.invalid, "TCPServer read buffer size \(readBufferSize)")
        let handle = allocateHandle(uv_tcp_t.self)
        do {
            try uvCheck(uv_tcp_init(loop.raw, handle), "uv_tcp_init")
        } catch {
            handle.deallocate()
            throw error
        }
        context = ServerContext(loop: loop, initialised: handle)
        context.readBufferSize = readBufferSize
    }

    deinit {
        assert(context.state != .open, "TCPServer deallocated without close()")
    }

    /// Binds to `address` (libuv sets `SO_REUSEADDR`); port 0 picks an ephemeral port.
    public func bind(to address: SocketAddress) throws(UVError) {
        let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_bind \(address)")
        try uvCheck(address.withSocketAddress { uv_tcp_bind(tcp, $0, 0) }, "uv_tcp_bind \(address)")
    }

    /// Starts listening. Each accepted connection (or accept error) goes to `onConnection`;
    /// the receiver owns an accepted stream and must close it.
    public func listen(backlog: Int32 = 128,
                       onConnection: @escaping (Result<TCPStream, UVError>) -> Void) throws(UVError) {
        let tcp = try context.live(as: uv_stream_t.self, "uv_listen")
        context.onConnection = onConnection
        try uvCheck(uv_listen(tcp, backlog, connectionArrived), "uv_listen")
    }

    /// The address the server is bound to.
    public var localAddress: SocketAddress {
        get throws(UVError) {
            let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_getsockname")
            return try SocketAddress.query("uv_tcp_getsockname") { uv_tcp_getsockname(tcp, $0, $1) }
        }
    }

    /// Stops listening and closes the socket; idempotent. Accepted streams stay open.
    public func close() {
        context.close()
    }
}

private final class ServerContext: HandleContext {
    var readBufferSize = StreamHandle.defaultReadBufferSize
    var onConnection: ((Result<TCPStream, UVError>) -> Void)?

    override func didClose() {
        onConnection = nil
        super.didClose()
    }

    /// Accepts one pending connection into a new `TCPStream`, closing it again if `uv_accept` fails.
    func accept(from server: UnsafeMutablePointer<uv_stream_t>) throws(UVError) -> TCPStream {
        let stream = try TCPStream(loop: loop, readBufferSize: readBufferSize)
        do {
            try uvCheck(uv_accept(server, stream.stream), "uv_accept")
        } catch {
            stream.close()
            throw error
        }
        return stream
    }
}

private func connectionArrived(_ server: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    let context = HandleContext.unretained(server, as: ServerContext.self)
    guard let onConnection = context.onConnection, let server else { return }
    let result: Result<TCPStream, UVError>
    if let error = uvStatus(status, "uv_listen") {
        result = .failure(error)
    } else {
        do {
            result = .success(try context.accept(from: server))
        } catch {
            result = .failure(error)
        }
    }
    onConnection(result)
}
