import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The cap on accepted connections and the idle timeouts, against real `starling worker` processes
/// (docs/PROTOCOL.md, "Connections"). Serialized: the first test holds 10,000 sockets.
@Suite(.serialized) struct ConnectionLimitTests {
    static let busyLine = "ERR - BUSY too many connections\r\n"

    /// 10,000 connections that never send a byte, then a new client: the worker holds them all
    /// (they are under its default cap) and still answers the client.
    @Test func tenThousandIdleConnectionsThenANewClientIsServed() async throws {
        let idleCount = 10_000
        let needed = idleCount + 256
        let limit = RawConnections.raiseDescriptorLimit(to: needed)
        guard limit >= needed else {
            try Test.cancel(
                Comment(rawValue: "skipped: this test holds \(idleCount) sockets and needs a descriptor limit of \(needed); "
                    + "the hard limit allows \(limit) (raise it with ulimit -Hn)"))
        }
        // The worker inherits the raised limit, so its default cap is far above 10,000; the route
        // timeout is lengthened so that a slow machine does not see the idle ones closed.
        let worker = try WorkerProcess(service: "echo", extra: ["--route-timeout", "120000"])
        let port = worker.address.port
        #expect(await RawConnections.isServed(port, within: .seconds(5)))
        let rssBefore = try #require(RunningProcess.read(worker.pid)?.residentKB)

        let started = ContinuousClock.now
        // Blocking for seconds: off the cooperative threads that other tests run on.
        let idle = try await runOnDedicatedThread { try RawConnections.openIdle(idleCount, to: port) }
        defer { RawConnections.closeAll(idle) }
        let connectTime = ContinuousClock.now - started

        // Connections are accepted in order, so the answer comes after the worker took all 10,000.
        let answer = try await RawConnections.exchange("PING\r\n", with: port, within: 10_000)
        #expect(answer.end != .reset, "the new client was reset: \(answer)")
        #expect(answer.text == "PONG\r\n" || answer.text == Self.busyLine, "the new client read \(answer)")
        #expect(answer.text == "PONG\r\n", "under the default cap (limit \(limit)) the client is served: \(answer)")

        let rssAfter = try #require(RunningProcess.read(worker.pid)?.residentKB)
        let held = RunningProcess.read(worker.pid)?.socketInodes.count ?? 0
        print("""
            \(idleCount) idle connections opened in \(connectTime); the worker holds \(held) sockets; \
            a new client read \(answer.text.debugDescription); worker RSS \(rssBefore) KB before, \(rssAfter) KB after \
            (+\(rssAfter - rssBefore) KB, \((rssAfter - rssBefore) * 1024 / idleCount) bytes a connection)
            """)
        #expect(held >= idleCount, "the worker should hold every idle connection")
        // Each idle connection costs a handle and its bookkeeping, never a read buffer.
        #expect(rssAfter - rssBefore < 60_000, "RSS grew by \(rssAfter - rssBefore) KB")
        // None of the idle connections was answered or closed.
        let disturbed = idle.prefix(100).map(RawConnections.readNow).filter { $0.end != .stillOpen || !$0.bytes.isEmpty }
        #expect(disturbed.isEmpty, "idle connections were disturbed: \(disturbed.prefix(3))")
    }

    /// With --max-connections 50 and 50 connections open, the 51st reads the BUSY line and is
    /// closed (not reset); the line is an ordinary client-protocol error. Once one closes, a new
    /// client is served, and the refusals are counted.
    @Test func theConnectionOverTheCapReadsBusy() async throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--max-connections", "50"])
        let port = worker.address.port
        var idle = try RawConnections.openIdle(50, to: port)
        defer { RawConnections.closeAll(idle) }

        let refused = try await RawConnections.exchange("PING\r\n", with: port, within: 5_000, untilLineEnd: false)
        #expect(refused.text == Self.busyLine)
        #expect(refused.end == .closed, "the refused client should see the connection closed: \(refused)")
        var decoder = ClientResponseDecoder()
        decoder.append(refused.bytes)
        #expect(decoder.next() == .response(.error(key: nil, code: .busy, message: "too many connections")))

        // The 50 held are untouched.
        #expect(idle.map(RawConnections.readNow).allSatisfy { $0.end == .stillOpen && $0.bytes.isEmpty })

        // A place frees once one of them closes (the worker sees its end of file).
        close(idle.removeFirst())
        #expect(await RawConnections.isServed(port, within: .seconds(5)), "no client was served after one of the 50 closed: \(worker.log.suffix(1500))")
        // STATUS takes a place too: free one more for it.
        close(idle.removeFirst())
        let report = await pollAsync(within: .seconds(5), every: .milliseconds(20)) { worker.status() }
        #expect((report?.rejected["connection_limit"] ?? 0) >= 1, "\(report?.rejected ?? [:])")
        #expect(worker.log.contains("with ERR - BUSY: 50 connections open (--max-connections)"))
    }

    /// StarlingClient reads the BUSY line as an error of the node it asked (and fails the call).
    @Test func starlingClientReadsBusyAsAnError() async throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--max-connections", "1"])
        let port = worker.address.port
        let held = try RawSocket.connectTCP(to: port)
        defer { close(held) }
        var configuration = StarlingClient.Configuration()
        configuration.maxConnectAttempts = 2
        let client = try StarlingClient(nodes: [try SocketAddress(ip: "127.0.0.1", port: port)], configuration: configuration)
        do {
            try await client.ping()
            Issue.record("a PING through a full worker was answered")
        } catch {
            #expect("\(error)".contains("BUSY"), "the client's error should name BUSY: \(error)")
        }
        await client.close()
    }

    /// Out of descriptors (EMFILE) before the cap: a new client reads the BUSY line through the
    /// reserved descriptor, never a reset, and the worker serves again once descriptors free.
    @Test func outOfDescriptorsAnswersBusyFromTheReserve() async throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--max-connections", "1000"], descriptorLimit: 64)
        let port = worker.address.port
        // More than 64 connections: the worker runs out of descriptors on the way.
        var idle = try RawConnections.openIdle(80, to: port)
        defer { RawConnections.closeAll(idle) }
        let refused = try await RawConnections.exchange("PING\r\n", with: port, within: 5_000, untilLineEnd: false)
        #expect(refused.text == Self.busyLine)
        #expect(refused.end == .closed, "\(refused)")
        // Every one of the 80 is held (open, silent) or was refused with the line: none was reset
        // or closed without a word.
        let readings = idle.map(RawConnections.readNow)
        let held = readings.filter { $0.end == .stillOpen && $0.bytes.isEmpty }.count
        let refusedIdle = readings.filter { $0.text == Self.busyLine && $0.end == .closed }.count
        #expect(held >= 1 && held < 64, "held \(held)")
        #expect(held + refusedIdle == idle.count, "neither held nor refused: \(readings.filter { $0.end == .reset || ($0.end == .closed && $0.bytes.isEmpty) }.prefix(3))")
        // Free some: the worker serves again.
        RawConnections.closeAll(Array(idle.prefix(10)))
        idle.removeFirst(10)
        #expect(await RawConnections.isServed(port, within: .seconds(5)))
        #expect(worker.log.contains("out of file descriptors (EMFILE)"), "\(worker.log.suffix(1500))")
    }

    /// A connection that names no protocol is closed after --route-timeout; a client with nothing
    /// in flight after --client-idle-timeout. Both are counted.
    @Test func idleConnectionsAreClosedAfterTheirTimeouts() async throws {
        let worker = try WorkerProcess(
            service: "echo", extra: ["--route-timeout", "300", "--client-idle-timeout", "400"])
        let port = worker.address.port
        let silent = try RawSocket.connectTCP(to: port)
        defer { close(silent) }
        let opened = ContinuousClock.now
        let silentEnd = await RawConnections.readOffPool(silent, within: 5_000)
        let silentFor = ContinuousClock.now - opened
        #expect(silentEnd.end == .closed && silentEnd.bytes.isEmpty, "\(silentEnd)")
        // Not before the timeout; the upper bounds (here and after the PING) only say "by the
        // timeout, not never": on a loaded 2-core CI machine the worker's timer has fired over 3 s
        // late.
        #expect(silentFor >= .milliseconds(300) && silentFor < .milliseconds(4_500), "closed after \(silentFor)")

        let client = try RawSocket.connectTCP(to: port)
        defer { close(client) }
        // Timed from before the PING: the worker's last activity is no earlier, whereas the
        // moment this task sees the PONG can be late on a loaded machine.
        let pinged = ContinuousClock.now
        let pong = await RawConnections.readOffPool(client, within: 2_000, untilLineEnd: true, sending: "PING\r\n")
        #expect(pong.text == "PONG\r\n")
        let clientEnd = await RawConnections.readOffPool(client, within: 5_000)
        let idleFor = ContinuousClock.now - pinged
        #expect(clientEnd.end == .closed && clientEnd.bytes.isEmpty, "\(clientEnd)")
        #expect(idleFor >= .milliseconds(400) && idleFor < .milliseconds(4_500), "closed \(idleFor) after the PING")

        let report = await pollAsync(within: .seconds(3), every: .milliseconds(20)) { worker.status() }
        #expect(report?.rejected["route_timeout"] == 1, "\(report?.rejected ?? [:])")
        #expect(report?.rejected["client_idle"] == 1, "\(report?.rejected ?? [:])")
    }

    /// A client waiting for a job is not idle: a 1.5 s job on a worker whose idle timeout is
    /// 300 ms is answered on the same connection, which then closes once idle.
    @Test func aClientWaitingOnALongJobIsNotClosed() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "sleep", definition: "handler = \"sleep\"\ntimeout_ms = 10000\n")
        let worker = try WorkerProcess(
            service: "sleep", extra: ["--jobs", jobs, "--client-idle-timeout", "300", "--route-timeout", "300"])
        let client = try RawSocket.connectTCP(to: worker.address.port)
        defer { close(client) }
        let submitted = ContinuousClock.now
        let answer = await RawConnections.readOffPool(
            client, within: 10_000, untilLineEnd: true,
            sending: "SUBMIT sleep long-1 4\r\n1500\r\n")
        #expect(answer.text.hasPrefix("OK long-1 "), "\(answer)")
        #expect(answer.end == .stillOpen, "\(answer)")
        #expect(ContinuousClock.now - submitted >= .milliseconds(1500))
        let end = await RawConnections.readOffPool(client, within: 5_000)
        #expect(end.end == .closed, "idle after its answer, the connection closes: \(end)")
    }
}
