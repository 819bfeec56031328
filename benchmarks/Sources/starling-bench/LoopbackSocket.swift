#if canImport(Glibc)
import Glibc
#endif

/// One blocking TCP connection to 127.0.0.1 (gearmand, nats-server, or a starling worker), used
/// by one thread only: writes go out whole, reads are buffered and parsed by the caller's framing.
final class LoopbackSocket {
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var offset = 0
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    /// Connects to 127.0.0.1:`port` with TCP_NODELAY; throws if it cannot.
    init(port: UInt16) throws(WireError) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw WireError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            fd = -1
            throw WireError("connect to 127.0.0.1:\(port): \(reason)")
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A port that was free on 127.0.0.1 a moment ago.
    static func freePort() throws(WireError) -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WireError("socket: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        guard bound == 0 else { throw WireError("bind 127.0.0.1:0: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Writes all of `bytes`; throws if the connection is gone.
    func send(_ bytes: [UInt8]) throws(WireError) {
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw WireError("send: \(String(cString: strerror(errno)))") }
            sent += result
        }
    }

    /// The next gearman response already received, without blocking; nil if none is complete.
    func bufferedPacket() throws(WireError) -> GearmanPacket? {
        try parse { buffer, offset throws(WireError) in try GearmanCodec.nextResponse(buffer, offset: &offset) }
    }

    /// Runs `parser` on the bytes received and not yet consumed; it advances `offset` past what
    /// it took and returns nil when it needs more bytes.
    func parse<Value>(_ parser: ([UInt8], inout Int) throws(WireError) -> Value?) throws(WireError) -> Value? {
        let value = try parser(buffer, &offset)
        if offset > 0 && (offset == buffer.count || offset > 1 << 16) {
            buffer.removeFirst(offset)
            offset = 0
        }
        return value
    }

    /// Waits up to `timeoutMs` (-1: for ever) for more bytes; returns false on timeout. Throws
    /// when the connection is closed or fails.
    func fill(timeoutMs: Int32) throws(WireError) -> Bool {
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, timeoutMs)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return false }
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count == 0 { throw WireError("connection closed by the server") }
            guard count > 0 else { throw WireError("recv: \(String(cString: strerror(errno)))") }
            buffer.append(contentsOf: scratch[0..<count])
            return true
        }
    }

    /// The next packet, waiting for it at most `timeoutMs` (-1: for ever); nil on timeout.
    func receive(timeoutMs: Int32) throws(WireError) -> GearmanPacket? {
        let deadline = timeoutMs < 0 ? UInt64.max : monotonicNs() + UInt64(timeoutMs) * 1_000_000
        while true {
            if let packet = try bufferedPacket() { return packet }
            let now = monotonicNs()
            guard now < deadline else { return nil }
            let wait = timeoutMs < 0 ? -1 : Int32((deadline - now) / 1_000_000) + 1
            _ = try fill(timeoutMs: wait)
        }
    }
}

/// A connection or framing failure on a `LoopbackSocket`.
struct WireError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
