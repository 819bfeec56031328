import Foundation
import StarlingTestSupport
import StarlingUV
import Testing

/// `starling submit`, as a process against fake nodes: output, exit statuses, argument checks.
@Suite struct SubmitCommandTests {
    @Test func okPrintsTheResultBytesAndExitsZero() throws {
        let node = try FakeNode()
        defer { node.stop() }
        let run = try starling(["submit", "--node", node.address.description, "--key", "cli-1", "echo", "hello world"])
        #expect(run.status == 0)
        #expect(run.stdout == Array("hello world".utf8))
        #expect(run.stderr.isEmpty)
        #expect(node.seen.keys == ["cli-1"])
    }

    /// A name is resolved once; every address it gives is tried in turn (localhost may give ::1
    /// first, where the node does not listen).
    @Test func aNodeGivenByNameIsResolved() throws {
        let node = try FakeNode()
        defer { node.stop() }
        let run = try starling(["submit", "--node", "localhost:\(node.address.port)", "--key", "by-name", "echo", "hi"])
        #expect(run.status == 0, "\(String(decoding: run.stderr, as: UTF8.self))")
        #expect(run.stdout == Array("hi".utf8))
        #expect(node.seen.keys == ["by-name"])
    }

    @Test func payloadFromStdinIsBinarySafe() throws {
        let node = try FakeNode()
        defer { node.stop() }
        let payload = Array(0...255) + Array("\r\n\n".utf8) + [0, 0]
        let dash = try starling(["submit", "--node", node.address.description, "echo", "-"], stdin: payload)
        #expect(dash.status == 0)
        #expect(dash.stdout == payload)
        let absent = try starling(["submit", "--node", node.address.description, "echo"], stdin: payload)
        #expect(absent.stdout == payload)
    }

    @Test func failExitsOneAndErrExitsTwo() throws {
        let node = try FakeNode()
        defer { node.stop() }
        let failed = try starling(["submit", "--node", node.address.description, "fail", "x"])
        #expect(failed.status == 1)
        #expect(failed.stdout.isEmpty)
        #expect(String(decoding: failed.stderr, as: UTF8.self) == "exit status 3\n")
        let refused = try starling(["submit", "--node", node.address.description, "nosuch", "x"])
        #expect(refused.status == 2)
        #expect(String(decoding: refused.stderr, as: UTF8.self) == "NO_SERVICE: no such service\n")
    }

    @Test func failsOverAcrossNodesAndReportsWhenNoneAnswers() throws {
        let dead = try FakeNode()
        dead.stop()
        let live = try FakeNode()
        defer { live.stop() }
        let failover = try starling(["submit", "--node", dead.address.description, "--node", live.address.description,
                                     "echo", "again"])
        #expect(failover.status == 0)
        #expect(failover.stdout == Array("again".utf8))

        let none = try starling(["submit", "--node", dead.address.description, "echo", "x"])
        #expect(none.status == 3)
        #expect(String(decoding: none.stderr, as: UTF8.self).contains("no node reachable"))
    }

    @Test(arguments: [
        ["submit", "echo", "x"],                                          // no --node
        ["submit", "--node", "localhost", "echo", "x"],                   // no port
        ["submit", "--node", "no-such-host.invalid:80", "echo", "x"],     // a name that does not resolve
        ["submit", "--node", "127.0.0.1:0", "echo", "x"],                 // port 0
        ["submit", "--node", "127.0.0.1:1", "Echo!", "x"],                // bad service
        ["submit", "--node", "127.0.0.1:1", "--key", "a b", "echo", "x"], // bad key
        ["submit", "--node", "127.0.0.1:1", "--timeout", "0", "echo", "x"],
        ["submit", "--node", "127.0.0.1:1"],                              // no service
    ])
    func badArgumentsAreUsageErrors(arguments: [String]) throws {
        let run = try starling(arguments)
        #expect(run.status == 64, "\(arguments): \(String(decoding: run.stderr, as: UTF8.self))")
        #expect(run.stdout.isEmpty)
    }
}

/// Runs the `starling` binary built with the tests to its end (killed after 60 s); only this
/// process is ever waited for.
private func starling(_ arguments: [String], stdin: [UInt8] = []) throws
    -> (status: Int32, stdout: [UInt8], stderr: [UInt8])
{
    let process = try SpawnedProcess(
        executable: try StarlingBinary.locate(searchBuildFolders: true), arguments: arguments, stdin: stdin,
        stdout: .pipe, stderr: .pipe)
    let run = process.collect(timeout: .seconds(60))
    return (run.status.signal == 0 ? Int32(run.status.code) : 128 + run.status.signal, run.stdout, run.stderr)
}
