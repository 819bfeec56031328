import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A command's own children end with it: a timeout or a drain ends its whole process group.
///
/// The tests are `async` and wait with `pollAsync` and non-blocking reads: the waits take seconds,
/// which a synchronous test would spend holding one of the few cooperative threads.
@Suite struct CommandGroupProcessTests {
    /// A service whose command leaves a background child running beside its foreground one.
    private static func jobs(marker: SleepMarker, timeoutMs: Int) throws -> String {
        try WorkerProcess.jobsDirectory(service: "sleepers", definition: """
            command = ["/bin/sh", "-c", "sleep \(marker.value) & sleep \(marker.value); wait"]
            timeout_ms = \(timeoutMs)

            """)
    }

    /// Sends `request` on a new connection to `port`; the connection, for the caller to close.
    private static func submit(_ request: String, to port: UInt16) throws -> Int32 {
        let client = try RawSocket.connectTCP(to: port)
        let bytes = Array(request.utf8)
        let sent = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        #expect(sent == bytes.count)
        return client
    }

    /// What arrives on `client` (read without blocking) until it holds `expected` or `timeout` has passed.
    private static func answer(on client: Int32, containing expected: String, within timeout: Duration) async -> String {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        _ = await pollAsync(within: timeout, every: .milliseconds(20)) { () -> Bool? in
            while case let count = recv(client, &chunk, chunk.count, Int32(MSG_DONTWAIT)), count > 0 {
                received += chunk[..<count]
            }
            return String(decoding: received, as: UTF8.self).contains(expected) ? true : nil
        }
        return String(decoding: received, as: UTF8.self)
    }

    @Test("a command that times out leaves none of its processes behind")
    func timeoutEndsTheGroup() async throws {
        let marker = SleepMarker()
        let worker = try WorkerProcess(service: "sleepers", extra: ["--jobs", try Self.jobs(marker: marker, timeoutMs: 500)])
        defer { worker.kill() }
        let client = try Self.submit("SUBMIT sleepers t1 0\r\n\r\n", to: worker.address.port)
        defer { close(client) }
        let text = await Self.answer(on: client, containing: "timed out after 500 ms; killed", within: .seconds(10))
        #expect(text.hasPrefix("FAIL t1 ") && text.contains("timed out after 500 ms; killed"), "\(text)")
        let gone = await pollAsync(within: .seconds(5)) { marker.sleepers.isEmpty ? true : nil }
        #expect(gone == true, "left behind: \(marker.sleepers.map(\.pid))")
    }

    @Test("a SIGTERM drain that runs out of time ends the command's whole group, then the worker exits")
    func drainEndsTheGroup() async throws {
        let marker = SleepMarker()
        let worker = try WorkerProcess(
            service: "sleepers",
            extra: ["--jobs", try Self.jobs(marker: marker, timeoutMs: 60_000), "--drain-timeout", "300"])
        defer { worker.kill() }
        let client = try Self.submit("SUBMIT sleepers d1 0\r\n\r\n", to: worker.address.port)
        defer { close(client) }
        let running = await pollAsync(within: .seconds(5)) { marker.sleepers.count == 2 ? true : nil }
        #expect(running == true, "the command's two sleeps never ran")

        worker.signal(SIGTERM)
        // Drain timeout (300 ms), then SIGTERM to the group and at most the grace period.
        let exit = await pollAsync(within: .seconds(15), every: .milliseconds(20)) { worker.process.reap() }
        #expect(exit == ChildProcess.ExitStatus(code: 0, signal: 0), "the worker did not exit cleanly: \(worker.log.suffix(2000))")
        let gone = await pollAsync(within: .seconds(5)) { marker.sleepers.isEmpty ? true : nil }
        #expect(gone == true, "left behind: \(marker.sleepers.map(\.pid))")
    }
}
