import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection, outgoing (`connect`) or accepted by a `TCPServer`. Loop-confined.
public final class TCPStream: StreamHandle {
    /// Creates an unconnected TCP handle; reads deliver at most `readBufferSize` bytes each. With
    /// `socketFor`, its socket is created at once for that address's family, so socket options
    /// (`setUserTimeout`) can be set before `connect`.
    public init(
        loop: EventLoop, readBufferSize: Int = StreamHandle.defaultReadBufferSize, socketFor address: SocketAddress? = nil
    ) throws(UVError) {
        try uvCheck(readBufferSize > 0 ? 0 : UVCode.invalid, "TCPStream read buffer size \(readBufferSize)")
        let handle = allocateHandle(uv_tcp_t.self)
        do {
            if let address {
                let family = UInt32(address.isIPv6 ? AF_INET6 : AF_INET)
                try uvCheck(uv_tcp_init_ex(loop.raw, handle, family), "uv_tcp_init_ex")
            } else {
                try uvCheck(uv_tcp_init(loop.raw, handle), "uv_tcp_init")
            }
        } catch {
            handle.deallocate()
            throw error
        }
        let context = StreamContext(loop: loop, initialised: handle)
        context.readBufferSize = readBufferSize
        super.init(context: context)
    }

    /// Connects to `address`; the completion runs exactly once, on the loop, unless this throws.
    public func connect(to address: SocketAddress, completion: @escaping (UVError?) -> Void) throws(UVError) {
        let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_connect \(address)")
        let request = Request(operation: "uv_tcp_connect \(address)", completion: completion)
        try request.submit(as: uv_connect_t.self) { req, _ in
            address.withSocketAddress { uv_tcp_connect(req, tcp, $0, connectCompleted) }
        }
    }

    /// Adopts a connected socket (one `TCPServer` accepted); on success the stream owns it.
    func open(descriptor: Int32) throws(UVError) {
        let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_open")
        try uvCheck(uv_tcp_open(tcp, descriptor), "uv_tcp_open")
    }

    /// The local end of the connection.
    public var localAddress: SocketAddress {
        get throws(UVError) {
            let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_getsockname")
            return try SocketAddress.query("uv_tcp_getsockname") { uv_tcp_getsockname(tcp, $0, $1) }
        }
    }

    /// The remote end of the connection.
    public var peerAddress: SocketAddress {
        get throws(UVError) {
            let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_getpeername")
            return try SocketAddress.query("uv_tcp_getpeername") { uv_tcp_getpeername(tcp, $0, $1) }
        }
    }

    /// Enables or disables Nagle's algorithm (`TCP_NODELAY`).
    public func setNoDelay(_ enabled: Bool) throws(UVError) {
        let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_nodelay")
        try uvCheck(uv_tcp_nodelay(tcp, enabled ? 1 : 0), "uv_tcp_nodelay")
    }

    /// Sets `TCP_USER_TIMEOUT` (Linux): once sent data stays unacknowledged for longer than
    /// `milliseconds`, the kernel aborts the connection and the next read or write fails with
    /// `ETIMEDOUT`; it also bounds the SYN retries of a `connect`. 0 restores the system default.
    /// Needs the socket: after `connect`, or on a stream created with `socketFor`.
    public func setUserTimeout(milliseconds: Int) throws(UVError) {
        try setTCPOption(TCP_USER_TIMEOUT, milliseconds, "setsockopt TCP_USER_TIMEOUT \(milliseconds) ms")
    }

    /// Sets the smallest retransmission timeout (`TCP_RTO_MIN_US`, Linux 6.15 and later; older
    /// kernels refuse it with `ENOPROTOOPT` and keep the system's, 200 ms by default). The kernel
    /// rounds it up to its clock's tick. Needs the socket, as `setUserTimeout` does.
    public func setMinimumRetransmitTimeout(microseconds: Int) throws(UVError) {
        // From linux/tcp.h, which the C library's headers here predate.
        let tcpRTOMinUs: Int32 = 45
        try setTCPOption(tcpRTOMinUs, microseconds, "setsockopt TCP_RTO_MIN_US \(microseconds) µs")
    }

    /// The kernel's view of the connection's retransmissions (`TCP_INFO`, Linux): how many
    /// retransmission timeouts in a row its oldest unacknowledged segment has met, and how many
    /// segments are unacknowledged. A connection whose peer only stopped reading shows none
    /// unacknowledged (its window is shut, not its path). Needs the socket, as `setUserTimeout` does.
    public func retransmissions() throws(UVError) -> TCPRetransmissions {
        let operation = "getsockopt TCP_INFO"
        let descriptor = try socketDescriptor(operation)
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        let result = getsockopt(descriptor, Int32(IPPROTO_TCP), TCP_INFO, &info, &length)
        try uvCheck(result == 0 ? 0 : -errno, operation)
        return TCPRetransmissions(
            timeoutsInARow: Int(info.tcpi_backoff), timeoutUs: Int(info.tcpi_rto), unacknowledgedSegments: Int(info.tcpi_unacked))
    }

    private func socketDescriptor(_ operation: String) throws(UVError) -> uv_os_fd_t {
        let tcp = try context.live(as: uv_tcp_t.self, operation)
        var descriptor: uv_os_fd_t = -1
        try uvCheck(tcp.withMemoryRebound(to: uv_handle_t.self, capacity: 1) { uv_fileno($0, &descriptor) }, operation)
        return descriptor
    }

    private func setTCPOption(_ option: Int32, _ value: Int, _ operation: String) throws(UVError) {
        try uvCheck((0...Int(Int32.max)).contains(value) ? 0 : UVCode.invalid, operation)
        let descriptor = try socketDescriptor(operation)
        var value32 = UInt32(value)
        let result = setsockopt(descriptor, Int32(IPPROTO_TCP), option, &value32, socklen_t(MemoryLayout<UInt32>.size))
        // libuv's codes are negated errno values on Unix.
        try uvCheck(result == 0 ? 0 : -errno, operation)
    }
}

/// What `TCPStream.retransmissions()` reads.
public struct TCPRetransmissions: Equatable, Sendable {
    /// Retransmission timeouts in a row without an acknowledgement (the kernel's backoff): each
    /// doubles the wait for the next.
    public var timeoutsInARow: Int
    /// The retransmission timeout now, doubled by each of those.
    public var timeoutUs: Int
    public var unacknowledgedSegments: Int

    public init(timeoutsInARow: Int, timeoutUs: Int, unacknowledgedSegments: Int) {
        self.timeoutsInARow = timeoutsInARow
        self.timeoutUs = timeoutUs
        self.unacknowledgedSegments = unacknowledgedSegments
    }

    /// How long the oldest unacknowledged segment has waited through timeouts: the timeouts in a
    /// row so far, each half the next (`timeoutUs` halved `timeoutsInARow` times, summed).
    public var waitedThroughTimeoutsUs: Int {
        guard unacknowledgedSegments > 0, timeoutsInARow > 0 else { return 0 }
        let doublings = min(timeoutsInARow, 30)
        return timeoutUs - (timeoutUs >> doublings)
    }
}

private func connectCompleted(_ req: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    Request.complete(req, status)
}
