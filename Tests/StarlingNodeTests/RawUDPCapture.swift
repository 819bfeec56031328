import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads every UDP datagram delivered on this host through a raw socket (`IPPROTO_UDP`, which
/// needs root or CAP_NET_RAW), as an outsider on the wire would capture heartbeats. The raw
/// pointers of the socket calls stay inside this type and `BoundUDPSocket`.
final class RawUDPCapture {
    struct Datagram {
        var sourcePort: UInt16
        var destinationPort: UInt16
        var payload: [UInt8]
    }

    private let fd: Int32

    /// nil (with the reason) when this process may not open a raw socket.
    static func open() -> Result<RawUDPCapture, CaptureUnavailable> {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_UDP))
        guard fd >= 0 else {
            return .failure(CaptureUnavailable(reason: "no raw socket (uid \(getuid())): \(String(cString: strerror(errno)))"))
        }
        return .success(RawUDPCapture(fd: fd))
    }

    private init(fd: Int32) {
        self.fd = fd
        var timeout = timeval(tv_sec: 0, tv_usec: 20_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Everything addressed to 127.0.0.1 on one of `ports` until `duration` has passed.
    func capture(toPorts ports: Set<UInt16>, for duration: Duration) -> [Datagram] {
        let deadline = ContinuousClock.now + duration
        var packet = [UInt8](repeating: 0, count: 65_536)
        var captured: [Datagram] = []
        while ContinuousClock.now < deadline {
            let count = recv(fd, &packet, packet.count, 0)
            guard count > 20 else { continue }  // timeout (-1) or not even an IP header
            let headerBytes = Int(packet[0] & 0x0F) * 4
            guard packet[0] >> 4 == 4, count >= headerBytes + 8 else { continue }
            let udp = packet[headerBytes..<count]
            let source = UInt16(udp[udp.startIndex]) << 8 | UInt16(udp[udp.startIndex + 1])
            let destination = UInt16(udp[udp.startIndex + 2]) << 8 | UInt16(udp[udp.startIndex + 3])
            guard ports.contains(destination) else { continue }
            captured.append(Datagram(sourcePort: source, destinationPort: destination, payload: Array(udp.dropFirst(8))))
        }
        return captured
    }
}

struct CaptureUnavailable: Error {
    let reason: String
}

/// A UDP socket bound to 127.0.0.1:`port` (e.g. the port of a worker that died), to send from that
/// address and see what comes back to it.
final class BoundUDPSocket {
    private let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = loopbackAddress(port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 20_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ datagram: [UInt8], to port: UInt16) {
        var address = loopbackAddress(port)
        _ = datagram.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// Every datagram received until `duration` has passed.
    func receive(for duration: Duration) -> [[UInt8]] {
        let deadline = ContinuousClock.now + duration
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var received: [[UInt8]] = []
        while ContinuousClock.now < deadline {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { received.append(Array(buffer[..<count])) }
        }
        return received
    }
}
