import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `starling status` and the client side of the TCP port, end to end with a real worker.
@Suite("starling status and client limits", .serialized)
struct StatusCommandTests {
    @Test("status prints the table and the JSON; a refused connection is a clear error")
    func statusCommand() throws {
        let worker = try WorkerProcess(service: "omicron")
        defer { worker.kill() }
        try #require(awaitAgreement([worker], within: 5) != nil)

        let table = try run(["status", "--node", worker.address.description])
        #expect(table.status == 0)
        #expect(table.stdout.hasPrefix("ID "))
        #expect(table.stdout.contains("\(worker.id.short)*") && table.stdout.contains("primary"))

        let json = try run(["status", "--node", worker.address.description, "--json"])
        #expect(json.status == 0)
        let report = try StatusReport(json: Array(json.stdout.utf8))
        #expect(report.selfID == worker.id)

        let port = try RawSocket.freePort()
        let refused = try run(["status", "--node", "127.0.0.1:\(port)"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("connection refused"))

        // A name is resolved once, and each address it gives is tried in turn (localhost may
        // give ::1 first, where the worker does not listen).
        let named = try run(["status", "--node", "localhost:\(worker.address.port)", "--json"])
        #expect(named.status == 0, "\(named.stderr)")
        #expect((try? StatusReport(json: Array(named.stdout.utf8)))?.selfID == worker.id)
        let unknown = try run(["status", "--node", "no-such-host.invalid:7946"])
        #expect(unknown.status == 64, "a bad argument: \(unknown.stderr)")
        #expect(unknown.stderr.contains("'no-such-host.invalid' does not resolve") || unknown.stderr.contains("did not resolve"),
                "\(unknown.stderr)")
    }

    @Test("a client that floods STATUS without reading is held back; others are still served")
    func backpressure() throws {
        let worker = try WorkerProcess(service: "pi")
        defer { worker.kill() }
        let fd = try RawSocket.connectTCP(to: worker.address.port)
        defer { close(fd) }
        // 2,000,000 requests (16 MB) whose answers (hundreds of MB) the client never reads: the
        // worker must stop reading once its backlog for this client is full, so the kernel buffers
        // fill and the sender is held back.
        let flood = Array(String(repeating: "STATUS\r\n", count: 2_000_000).utf8)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var sent = 0
        _ = poll(within: .seconds(1), every: .milliseconds(5)) { () -> Bool? in
            let n = flood[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n }
            return sent == flood.count ? true : nil
        }
        let rssKB = RunningProcess.read(worker.pid)?.residentKB ?? 0
        print("flooding client: \(sent) of \(flood.count) request bytes accepted; worker RSS \(rssKB) KB")
        #expect(sent < flood.count, "the worker kept reading a client that does not read its answers")
        #expect(rssKB < 200_000)
        let answer = try RawSocket.exchangeTCP(Array("PING\r\n".utf8), with: worker.address.port)
        #expect(String(decoding: answer, as: UTF8.self) == "PONG\r\n")
        #expect(worker.status() != nil)
        #expect(worker.process.isRunning)
    }

    @Test("the status client gives up after its timeout when nobody answers")
    func statusTimeout() throws {
        // A listener that never accepts: the connection completes in the kernel, no answer ever comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(bound)
        let silent = NodeAddress.ipv4(127, 0, 0, 1, port: UInt16(bigEndian: address.sin_port))
        let started = ContinuousClock.now
        #expect {
            try StatusClient.fetch(from: silent, timeoutMs: 200)
        } throws: { error in
            guard case .timedOut = error as? StatusClient.Failure else { return false }
            return true
        }
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try SpawnedProcess(
            executable: try WorkerProcess.binary(), arguments: arguments, stdout: .pipe, stderr: .pipe)
        let run = process.collect(timeout: .seconds(60))
        let status = run.status.signal == 0 ? Int32(run.status.code) : 128 + run.status.signal
        return (status, String(decoding: run.stdout, as: UTF8.self), String(decoding: run.stderr, as: UTF8.self))
    }
}
