import CLibUV

/// What a receiving `UDPSocket` reports for each datagram or failure.
public enum UDPReceiveEvent: Sendable {
    /// A whole datagram.
    case datagram([UInt8], from: SocketAddress)
    /// A datagram longer than the receive buffer: the kernel cut it, so its bytes are not delivered.
    case truncated(from: SocketAddress)
    /// A receive error; the socket keeps receiving unless you stop or close it.
    case failed(UVError)
}

/// A libuv UDP socket. Loop-confined.
public final class UDPSocket {
    /// The default receive buffer: one maximal UDP payload fits (65,507 bytes over IPv4).
    public static let defaultReceiveBufferSize = 64 * 1024

    private let context: UDPContext

    /// Creates an unbound socket; datagrams longer than `receiveBufferSize` are reported as truncated.
    public init(loop: EventLoop, receiveBufferSize: Int = UDPSocket.defaultReceiveBufferSize) throws(UVError) {
        try uvCheck(receiveBufferSize > 0 ? 0 : UVCode.invalid, "UDPSocket receive buffer size \(receiveBufferSize)")
        let handle = allocateHandle(uv_udp_t.self)
        do {
            try uvCheck(uv_udp_init(loop.raw, handle), "uv_udp_init")
        } catch {
            handle.deallocate()
            throw error
        }
        context = UDPContext(loop: loop, initialised: handle)
        context.receiveBufferSize = receiveBufferSize
    }

    deinit {
        assert(context.state != .open, "UDPSocket deallocated without close()")
    }

    /// Binds to `address`; port 0 picks an ephemeral port (see `localAddress`).
    public func bind(to address: SocketAddress, reuseAddress: Bool = false) throws(UVError) {
        let udp = try context.live(as: uv_udp_t.self, "uv_udp_bind \(address)")
        let flags = reuseAddress ? UInt32(UV_UDP_REUSEADDR.rawValue) : 0
        try uvCheck(address.withSocketAddress { uv_udp_bind(udp, $0, flags) }, "uv_udp_bind \(address)")
    }

    /// The address the socket is bound to.
    public var localAddress: SocketAddress {
        get throws(UVError) {
            let udp = try context.live(as: uv_udp_t.self, "uv_udp_getsockname")
            return try SocketAddress.query("uv_udp_getsockname") { uv_udp_getsockname(udp, $0, $1) }
        }
    }

    /// Sends a copy of `bytes` to `address`.
    ///
    /// Without a completion the datagram is first offered to `uv_udp_try_send`, falling back to a
    /// queued send. With a completion the send is always queued, so the completion runs later, on
    /// the loop, exactly once. If this throws, the completion is never called.
    public func send(bytes: [UInt8], to address: SocketAddress,
                     completion: ((UVError?) -> Void)? = nil) throws(UVError) {
        let udp = try context.live(as: uv_udp_t.self, "uv_udp_send \(address)")
        if completion == nil {
            let sent = bytes.withUnsafeBytes { bytes in
                var buffer = uv_buf_init(
                    UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: CChar.self)),
                    UInt32(bytes.count))
                return address.withSocketAddress { uv_udp_try_send(udp, &buffer, 1, $0) }
            }
            if sent != UV_EAGAIN.rawValue {
                try uvCheck(sent, "uv_udp_try_send \(address)")
                return
            }
        }
        let request = Request(copying: bytes, operation: "uv_udp_send \(address)", completion: completion)
        try request.submit(as: uv_udp_send_t.self) { req, buffer in
            address.withSocketAddress { uv_udp_send(req, udp, buffer, 1, $0, sendCompleted) }
        }
    }

    /// Starts delivering datagrams to `handler`, on the loop thread, until stopped or closed.
    public func startReceiving(_ handler: @escaping (UDPReceiveEvent) -> Void) throws(UVError) {
        let udp = try context.live(as: uv_udp_t.self, "uv_udp_recv_start")
        context.allocateReceiveBuffer()
        context.onReceive = handler
        try uvCheck(uv_udp_recv_start(udp, udpAllocate, udpReceived), "uv_udp_recv_start")
    }

    /// Stops receiving; no effect once closed.
    public func stopReceiving() {
        guard context.state == .open else { return }
        uv_udp_recv_stop(context.pointer(as: uv_udp_t.self))
    }

    /// Closes the socket; idempotent. Queued sends complete with `ECANCELED` first.
    public func close() {
        context.close()
    }
}

private final class UDPContext: HandleContext {
    var receiveBufferSize = UDPSocket.defaultReceiveBufferSize
    /// One buffer reused for every datagram: libuv hands it back before asking for the next one.
    var receiveBuffer: UnsafeMutableRawBufferPointer?
    var onReceive: ((UDPReceiveEvent) -> Void)?

    func allocateReceiveBuffer() {
        if receiveBuffer == nil {
            receiveBuffer = .allocate(byteCount: receiveBufferSize, alignment: 16)
        }
    }

    override func didClose() {
        onReceive = nil
        receiveBuffer?.deallocate()
        receiveBuffer = nil
        super.didClose()
    }
}

private func udpAllocate(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int,
                         _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
    let context = HandleContext.unretained(handle, as: UDPContext.self)
    let storage = context.receiveBuffer!
    buffer!.pointee = uv_buf_init(storage.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(storage.count))
}

private func udpReceived(_ handle: UnsafeMutablePointer<uv_udp_t>?, _ nread: Int,
                         _ buffer: UnsafePointer<uv_buf_t>?, _ sender: UnsafePointer<sockaddr>?,
                         _ flags: UInt32) {
    let context = HandleContext.unretained(handle, as: UDPContext.self)
    guard let onReceive = context.onReceive else { return }
    if nread < 0 {
        onReceive(.failed(uvStatus(Int32(nread), "uv_udp_recv")!))
        return
    }
    // nread == 0 with no sender means "nothing more to read"; the buffer is ours, nothing to free.
    guard let sender else { return }
    let from: SocketAddress
    do {
        from = try SocketAddress(sender, "uv_udp_recv")
    } catch {
        onReceive(.failed(error))
        return
    }
    if flags & UInt32(UV_UDP_PARTIAL.rawValue) != 0 {
        onReceive(.truncated(from: from))
        return
    }
    let bytes = Array(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: nread))
    onReceive(.datagram(bytes, from: from))
}

private func sendCompleted(_ req: UnsafeMutablePointer<uv_udp_send_t>?, _ status: Int32) {
    Request.complete(req, status)
}
