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
@Suite struct CommandGroupProcessTests {
    /// A `sleep` argument unique to one test run, so that no other test's sleeps are counted.
    private static func marker() -> String { "987654.\(UInt32.random(in: 100_000...999_999))" }

    /// A service whose command leaves a background child running beside its foreground one.
    private static func jobs(marker: String, timeoutMs: Int) throws -> String {
        try WorkerProcess.jobsDirectory(service: "sleepers", definition: """
            command = ["/bin/sh", "-c", "sleep \(marker) & sleep \(marker); wait"]
            timeout_ms = \(timeoutMs)

            """)
    }

    /// The running (not zombie) processes `sleep marker`, from the command lines in /proc.
    private static func sleepers(_ marker: String) -> [Int32] {
        RunningProcess.all().filter {
            let arguments = $0.arguments
            return arguments.count == 2 && arguments[0].hasSuffix("sleep") && arguments[1] == marker
        }.map(\.pid)
    }

    @Test("a command that times out leaves none of its processes behind")
    func timeoutEndsTheGroup() throws {
        let marker = Self.marker()
        let worker = try WorkerProcess(service: "sleepers", extra: ["--jobs", try Self.jobs(marker: marker, timeoutMs: 500)])
        defer { worker.kill() }
        let answer = try RawSocket.exchangeTCP(Array("SUBMIT sleepers t1 0\r\n\r\n".utf8), with: worker.address.port, timeoutMs: 10_000)
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("FAIL t1 ") && text.contains("timed out after 500 ms; killed"), "\(text)")
        let gone = poll(within: .seconds(5)) { Self.sleepers(marker).isEmpty ? true : nil }
        #expect(gone == true, "left behind: \(Self.sleepers(marker))")
    }

    @Test("a SIGTERM drain that runs out of time ends the command's whole group, then the worker exits")
    func drainEndsTheGroup() throws {
        let marker = Self.marker()
        let worker = try WorkerProcess(
            service: "sleepers",
            extra: ["--jobs", try Self.jobs(marker: marker, timeoutMs: 60_000), "--drain-timeout", "300"])
        defer { worker.kill() }
        let client = try RawSocket.connectTCP(to: worker.address.port)
        defer { close(client) }
        let request = Array("SUBMIT sleepers d1 0\r\n\r\n".utf8)
        #expect(request.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == request.count)
        let running = poll(within: .seconds(5)) { Self.sleepers(marker).count == 2 ? true : nil }
        #expect(running == true, "the command's two sleeps never ran")

        worker.signal(SIGTERM)
        // Drain timeout (300 ms), then SIGTERM to the group and at most the grace period.
        let exit = poll(within: .seconds(15), every: .milliseconds(20)) { worker.process.reap() }
        #expect(exit == ChildProcess.ExitStatus(code: 0, signal: 0), "the worker did not exit cleanly: \(worker.log.suffix(2000))")
        let gone = poll(within: .seconds(5)) { Self.sleepers(marker).isEmpty ? true : nil }
        #expect(gone == true, "left behind: \(Self.sleepers(marker))")
    }
}
