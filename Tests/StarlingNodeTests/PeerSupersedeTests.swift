import Foundation
import StarlingCore
import StarlingTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A peer's new inbound connection supersedes its older one: the peer made it because the old one
/// broke, perhaps silently (a stall aborted by TCP_USER_TIMEOUT sends no RST).
@Suite struct PeerSupersedeTests {
    @Test("a second connection whose hello names the same peer closes the first; another peer's stays")
    func newConnectionClosesTheOlder() async throws {
        let worker = try WorkerProcess(service: "echo")
        defer { worker.kill() }
        let port = worker.address.port
        func hello(_ peerPort: UInt16) -> [UInt8] {
            PeerMessageCodec.encode(.hello(sender: NodeID(high: 7, low: UInt64(peerPort)), address: .ipv4(127, 0, 0, 1, port: peerPort)))
        }
        func open(saying bytes: [UInt8]) throws -> Int32 {
            let fd = try RawSocket.connectTCP(to: port)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            return fd
        }
        let old = try open(saying: hello(9))
        defer { close(old) }
        let other = try open(saying: hello(10))
        defer { close(other) }
        // Both are read before the new one comes.
        try await Task.sleep(for: .milliseconds(300))
        let new = try open(saying: hello(9))
        defer { close(new) }

        let oldEnd = await RawConnections.readOffPool(old, within: 3_000)
        #expect(oldEnd.end == .closed && oldEnd.bytes.isEmpty, "\(oldEnd)")
        let newEnd = await RawConnections.readOffPool(new, within: 300)
        #expect(newEnd.end == .stillOpen, "\(newEnd)")
        let otherEnd = await RawConnections.readOffPool(other, within: 300)
        #expect(otherEnd.end == .stillOpen, "\(otherEnd)")
        let logged = poll(within: .seconds(3)) { worker.log.contains("127.0.0.1:9 opened a new peer link") ? true : nil }
        #expect(logged == true, "\(worker.log.suffix(2000))")
    }
}
