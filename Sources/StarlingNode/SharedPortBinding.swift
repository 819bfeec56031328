import Logging
import StarlingCore
import StarlingUV

/// A UDP socket and a listening TCP server bound to the same port (heartbeats and clients).
struct SharedPortBinding {
    let udp: UDPSocket
    let server: TCPServer
    /// The real bound address, as peers reach it.
    let address: NodeAddress

    /// How many ephemeral ports to try when TCP finds the UDP port taken (`--port 0` only).
    static let maxAttempts = 8

    /// Binds UDP first (to `port`, or an ephemeral port for 0), then TCP on the same port. With port
    /// 0, a TCP `EADDRINUSE` means another process holds that TCP port: try a new UDP port. Each
    /// port given up is logged, so a start that fails after all of them says what it tried.
    static func bind(
        loop: EventLoop, host: NodeAddress.Host, port: UInt16, logger: Logger,
        onConnection: @escaping (Result<TCPStream, UVError>) -> Void
    ) throws(UVError) -> SharedPortBinding {
        var attempt = 1
        while true {
            let udp = try UDPSocket(loop: loop)
            let server: TCPServer
            do {
                server = try TCPServer(loop: loop)
            } catch {
                udp.close()
                throw error
            }
            var udpPort: UInt16 = 0
            do {
                try udp.bind(to: NodeAddress(host: host, port: port).socketAddress)
                let bound = try udp.localAddress
                udpPort = bound.port
                // libuv may report a TCP EADDRINUSE from bind or only from listen.
                try server.bind(to: bound)
                try server.listen(backlog: 511, onConnection: onConnection)
                return SharedPortBinding(udp: udp, server: server, address: NodeAddress(bound))
            } catch {
                udp.close()
                server.close()
                guard port == 0, error.name == "EADDRINUSE" else { throw error }
                let givingUp = attempt == maxAttempts
                logger.notice(givingUp ? "ephemeral port taken for TCP, the last to try" : "ephemeral port taken for TCP, trying another", metadata: [
                    "port": "\(udpPort)", "attempt": "\(attempt)", "of": "\(maxAttempts)", "error": "\(error)",
                ])
                guard !givingUp else { throw error }
                attempt += 1
            }
        }
    }
}
