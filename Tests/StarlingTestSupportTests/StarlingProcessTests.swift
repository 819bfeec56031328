import Foundation
import StarlingCore
import StarlingTestSupport
import Testing

/// `StarlingProcess` against stand-ins written in sh: only their stdout matters to it.
@Suite struct StarlingProcessTests {
    private let id = "0192f3a4-5b6c-7d8e-9f00-112233445566"

    private func start(_ script: String) throws -> StarlingProcess {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("starling-ts-\(UUID().uuidString.prefix(8)).log")
        return try StarlingProcess(executable: "/bin/sh", arguments: ["-c", script], logPath: log.path)
    }

    @Test func skipsOtherLinesUntilTheListeningLine() throws {
        let process = try start("echo 'a banner'; echo 'starling worker \(id) listening on 127.0.0.1:5' ; echo oops >&2; exec sleep 30")
        defer { process.spawned.kill() }
        let line = try #require(process.waitUntilListening(as: .worker, timeout: .seconds(10)))
        #expect(line.address == NodeAddress.ipv4(127, 0, 0, 1, port: 5))
        #expect(process.listening == line)
        #expect(process.lastOtherLine == "a banner")
        #expect(poll(within: .seconds(5)) { process.log.contains("oops") ? true : nil } == true)
        #expect(process.logTail(lines: 1) == ["oops"])
    }

    @Test func aLineOfTheOtherKindIsNotIt() throws {
        let process = try start("echo 'starling worker \(id) listening on 127.0.0.1:5'; exec sleep 30")
        defer { process.spawned.kill() }
        let started = ContinuousClock.now
        #expect(process.waitUntilListening(as: .agent, timeout: .milliseconds(300)) == nil)
        #expect(ContinuousClock.now - started >= .milliseconds(300))
    }

    @Test func aProcessThatEndsSilentlyIsGivenUpOnAtOnce() throws {
        let process = try start("echo bye; exit 3")
        defer { process.spawned.kill() }
        let started = ContinuousClock.now
        #expect(process.waitUntilListening(as: .worker, timeout: .seconds(20)) == nil)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(process.lastOtherLine == "bye")
    }

    @Test func stopsWhenInterrupted() throws {
        let process = try start("exec sleep 30")
        defer { process.spawned.kill() }
        let started = ContinuousClock.now
        #expect(process.waitUntilListening(as: .agent, timeout: .seconds(20), interrupted: { true }) == nil)
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
