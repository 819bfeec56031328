#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// A listening TCP socket that hands each accepted connection over as a `TCPStream`, within a cap on
/// the connections it has handed out and not yet seen closed. Loop-confined.
///
/// It accepts by itself (a poll watch on the listening socket and `accept4`) rather than through
/// `uv_listen`: when the process is out of descriptors, libuv's own answer (`uv__emfile_trick`)
/// accepts and closes every waiting connection without a word, and without its spare descriptor
/// it calls back with `EMFILE` in a loop that cannot end. Here a connection over `maxConnections`,
/// or one that arrives while the process is out of descriptors (`EMFILE`, `ENFILE`: taken with a
/// `DescriptorReserve`), is sent `refusalMessage` and closed, and `onRefused` says so.
public final class TCPServer {
    /// Why a connection was refused as it was accepted.
    public enum Refusal: Sendable, Equatable {
        /// `maxConnections` accepted connections were open.
        case atCapacity(maxConnections: Int)
        /// The process (`EMFILE`) or the system (`ENFILE`) had no descriptor left: the connection
        /// was taken with the reserved one, told, and closed.
        case outOfDescriptors(errorName: String)
    }

    /// At most this many connections are accepted per readiness callback, so that a flood of
    /// connections cannot hold the loop; the rest are taken on the next loop iteration.
    static let acceptsPerCallback = 128
    /// How long accepting pauses when a connection cannot be taken at all: out of descriptors with
    /// the reserve gone (its number taken elsewhere first), or an error such as `ENOBUFS`.
    static let acceptPauseMs: UInt64 = 100

    private let context: ServerContext
    private let readBufferSize: Int
    private var watch: PollWatch?
    private var listeningDescriptor: Int32 = -1
    private var reserve = DescriptorReserve()
    private var pauseTimer: Timer?
    private let accepted = AcceptedCount()
    private var onConnection: ((Result<TCPStream, UVError>) -> Void)?

    /// Connections accepted while this many accepted streams are open are refused (default: no cap).
    public var maxConnections = Int.max
    /// Written to a refused connection before it is closed (e.g. a protocol's "busy" answer).
    public var refusalMessage: [UInt8] = []
    /// Called once per refused connection, after it was closed.
    public var onRefused: (Refusal) -> Void = { _ in }

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
        self.readBufferSize = readBufferSize
    }

    deinit {
        assert(context.state != .open, "TCPServer deallocated without close()")
    }

    /// Binds to `address` (libuv sets `SO_REUSEADDR`); port 0 picks an ephemeral port.
    public func bind(to address: SocketAddress) throws(UVError) {
        let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_bind \(address)")
        try uvCheck(address.withSocketAddress { uv_tcp_bind(tcp, $0, 0) }, "uv_tcp_bind \(address)")
        // libuv keeps an EADDRINUSE from bind to report it from uv_listen, which this server does
        // not call: a socket left unbound (port 0) is that error, reported here instead of a
        // listen that would take some other ephemeral port.
        let bound: SocketAddress
        do {
            bound = try localAddress
        } catch {
            // libuv answers getsockname with the error it kept from bind: it is bind's.
            try uvCheck(error.code, "uv_tcp_bind \(address)")
            throw error
        }
        try uvCheck(bound.port == 0 ? UV_EADDRINUSE.rawValue : 0, "uv_tcp_bind \(address)")
    }

    /// Starts listening; `bind` first. Each accepted connection (or accept error) goes to
    /// `onConnection`; the receiver owns an accepted stream and must close it.
    public func listen(backlog: Int32 = 128,
                       onConnection: @escaping (Result<TCPStream, UVError>) -> Void) throws(UVError) {
        let tcp = try context.live(as: uv_handle_t.self, "listen")
        try uvCheck(watch == nil ? 0 : UV_EALREADY.rawValue, "listen")
        var descriptor: uv_os_fd_t = -1
        try uvCheck(uv_fileno(tcp, &descriptor), "uv_fileno (bind before listen)")
        try uvCheck(Glibc.listen(descriptor, backlog) == 0 ? 0 : -errno, "listen")
        let watch = try PollWatch(loop: context.loop, socket: descriptor)
        reserve.hold()
        listeningDescriptor = descriptor
        self.watch = watch
        self.onConnection = onConnection
        do {
            try watch.startReadable { [unowned self] in acceptWaiting() }
        } catch {
            close()
            throw error
        }
    }

    /// The address the server is bound to.
    public var localAddress: SocketAddress {
        get throws(UVError) {
            let tcp = try context.live(as: uv_tcp_t.self, "uv_tcp_getsockname")
            return try SocketAddress.query("uv_tcp_getsockname") { uv_tcp_getsockname(tcp, $0, $1) }
        }
    }

    /// Accepted streams not closed yet.
    public var openConnections: Int { accepted.open }

    /// Stops listening and closes the socket; idempotent. Accepted streams stay open.
    public func close() {
        guard context.state == .open else { return }
        // The watch leaves libuv's poll set inside uv_close, before the socket is closed.
        watch?.close()
        pauseTimer?.close()
        reserve.release()
        onConnection = nil
        context.close()
    }

    /// Takes the connections waiting in the backlog, up to `acceptsPerCallback`.
    private func acceptWaiting() {
        // A reserve lost at EMFILE (its number taken elsewhere) is taken back as soon as a
        // descriptor is free, not only at the next EMFILE; a no-op while it is held.
        reserve.hold()
        for _ in 0..<Self.acceptsPerCallback {
            guard context.state == .open, let onConnection else { return }
            let descriptor = CLibUV.accept4(listeningDescriptor, nil, nil, Self.acceptFlags)
            if descriptor >= 0 {
                if accepted.open >= maxConnections {
                    refuse(descriptor)
                    onRefused(.atCapacity(maxConnections: maxConnections))
                } else {
                    onConnection(adopt(descriptor))
                }
                continue
            }
            let code = errno
            switch code {
            case EAGAIN, EWOULDBLOCK:
                return
            case EINTR, ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENETUNREACH, EHOSTDOWN, EHOSTUNREACH:
                // A signal, a client that left the backlog before it was taken, or (Linux) a
                // network error pending on the new socket or a firewall's veto: that one
                // connection's, so take the next (accept(2) says to treat these as EAGAIN).
                continue
            case EMFILE, ENFILE:
                guard refuseWithReserve(code) else { return }
            default:
                // ENOBUFS, ENOMEM, ...: the backlog stays readable, so without a pause the
                // level-triggered watch would call back (and report) on every loop iteration.
                onConnection(.failure(uvStatus(-code, "accept4")!))
                pauseAccepting()
                return
            }
        }
    }

    /// Out of descriptors: frees the reserved one for a connection, refuses it, and takes the
    /// reserve back. Returns whether accepting may go on in this callback.
    private func refuseWithReserve(_ code: Int32) -> Bool {
        guard reserve.isHeld else {
            pauseAccepting()
            return false
        }
        reserve.release()
        let descriptor = CLibUV.accept4(listeningDescriptor, nil, nil, Self.acceptFlags)
        let retryError = errno
        if descriptor >= 0 { refuse(descriptor) }
        reserve.hold()
        guard descriptor >= 0 else {
            // The freed number went elsewhere first (another thread, or another process under
            // ENFILE): the backlog cannot be taken now, and watching on would spin the loop.
            if retryError == EMFILE || retryError == ENFILE { pauseAccepting() }
            return false
        }
        onRefused(.outOfDescriptors(errorName: code == ENFILE ? "ENFILE" : "EMFILE"))
        return true
    }

    /// Stops watching for a while: a level-triggered watch of a backlog that cannot be taken
    /// would otherwise call back on every loop iteration.
    private func pauseAccepting() {
        // `onConnection` may have closed the server: then no timer may be made that nothing closes.
        guard context.state == .open else { return }
        watch?.stop()
        do {
            let timer = try pauseTimer ?? Timer(loop: context.loop)
            pauseTimer = timer
            try timer.start(afterMs: Self.acceptPauseMs) { [unowned self] in
                guard context.state == .open, let watch else { return }
                try? watch.startReadable { [unowned self] in acceptWaiting() }
            }
        } catch {
            // No timer to be had either: go on watching rather than stop accepting for good.
            try? watch?.startReadable { [unowned self] in acceptWaiting() }
        }
    }

    /// An accepted descriptor as a stream, counted as open until the stream is closed.
    private func adopt(_ descriptor: Int32) -> Result<TCPStream, UVError> {
        let stream: TCPStream
        do {
            stream = try TCPStream(loop: context.loop, readBufferSize: readBufferSize)
        } catch {
            Glibc.close(descriptor)
            return .failure(error)
        }
        do {
            try stream.open(descriptor: descriptor)
        } catch {
            stream.close()
            Glibc.close(descriptor)  // never adopted: the stream's close leaves it alone
            return .failure(error)
        }
        accepted.open += 1
        stream.context.onClose = { [accepted] in accepted.open -= 1 }
        return .success(stream)
    }

    /// Sends the refusal, then closes. What the client has sent already is read and dropped first:
    /// a socket closed with unread input is reset, and the reset may overtake the refusal.
    private func refuse(_ descriptor: Int32) {
        if !refusalMessage.isEmpty {
            _ = refusalMessage.withUnsafeBytes { bytes in
                send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
        }
        _ = shutdown(descriptor, Int32(SHUT_WR))
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { scratch in
            var reads = 0
            while reads < 16, recv(descriptor, scratch.baseAddress, scratch.count, Int32(MSG_DONTWAIT)) > 0 { reads += 1 }
        }
        Glibc.close(descriptor)
    }

    private static let acceptFlags = Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
}

/// The accepted streams still open, shared with each stream's close hook (which may outlive the server).
private final class AcceptedCount {
    var open = 0
}

/// The listening socket's handle: it owns the descriptor, and closing it closes the socket.
private final class ServerContext: HandleContext {}
