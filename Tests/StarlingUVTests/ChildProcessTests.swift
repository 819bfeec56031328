import Glibc
import StarlingTestSupport
import StarlingUV
import Testing

@Suite struct ChildProcessTests {
    @Test func catEchoesStdinToStdout() throws {
        try withLoop { loop in
            var exits: [ChildProcess.ExitStatus] = []
            let cat = try ChildProcess(loop: loop, executable: "/bin/cat", stderr: .inherit) { exits.append($0) }
            defer { cat.close() }
            let input = pattern(count: 200_000)
            var output: [UInt8] = []
            var eof = false
            var errors: [UVError] = []
            try cat.stdout!.startReading { event in
                switch event {
                case .bytes(let bytes): output += bytes
                case .endOfFile: eof = true
                case .failed(let error): errors.append(error)
                }
            }
            try cat.stdin!.write(bytes: input) { if let e = $0 { errors.append(e) } }
            try cat.stdin!.shutdown { if let e = $0 { errors.append(e) } }
            try drive(loop, "cat output and exit") { (eof && !exits.isEmpty) || !errors.isEmpty }
            #expect(errors.isEmpty)
            #expect(output == input)
            #expect(exits == [ChildProcess.ExitStatus(code: 0, signal: 0)])
            #expect(cat.pid > 0)
        }
    }

    @Test func reportsTheExitCode() throws {
        try withLoop { loop in
            var exits: [ChildProcess.ExitStatus] = []
            let sh = try ChildProcess(loop: loop, executable: "/bin/sh", arguments: ["-c", "exit 3"],
                                      stdin: .ignore, stdout: .ignore, stderr: .ignore) { exits.append($0) }
            defer { sh.close() }
            #expect(sh.stdin == nil && sh.stdout == nil)
            try drive(loop, "sh exit") { !exits.isEmpty }
            #expect(exits == [ChildProcess.ExitStatus(code: 3, signal: 0)])
        }
    }

    @Test func passesEnvironmentAndWorkingDirectory() throws {
        try withLoop { loop in
            var exits: [ChildProcess.ExitStatus] = []
            var output: [UInt8] = []
            var eof = false
            let sh = try ChildProcess(
                loop: loop, executable: "/bin/sh", arguments: ["-c", "printf '%s %s' \"$GREETING\" \"$(pwd)\""],
                environment: ["GREETING": "hello"], workingDirectory: "/tmp", stdin: .ignore
            ) { exits.append($0) }
            defer { sh.close() }
            try sh.stdout!.startReading { event in
                if case .bytes(let bytes) = event { output += bytes } else { eof = true }
            }
            try drive(loop, "sh output and exit") { eof && !exits.isEmpty }
            #expect(String(decoding: output, as: UTF8.self) == "hello /tmp")
            #expect(exits == [ChildProcess.ExitStatus(code: 0, signal: 0)])
        }
    }

    @Test func killReportsTheSignal() throws {
        try withLoop { loop in
            let (sleeper, exits) = try sleep30(on: loop)
            defer { sleeper.close() }
            try sleeper.kill(SIGKILL)
            try drive(loop, "sleep killed") { !exits.statuses.isEmpty }
            #expect(exits.statuses == [ChildProcess.ExitStatus(code: 0, signal: SIGKILL)])
            #expect(sleeper.hasExited)
            // Its PID may be reused now, so a second kill must not reach anything.
            #expect(caught { () throws(UVError) in try sleeper.kill(SIGKILL) }?.name == "ESRCH")
        }
    }

    @Test func aChildOfItsOwnGroupTakesItsChildrenAlongWhenTheGroupIsSignalled() throws {
        try withLoop { loop in
            var exits: [ChildProcess.ExitStatus] = []
            var output: [UInt8] = []
            // The shell prints its background child's PID, then waits for it.
            let sh = try ChildProcess(
                loop: loop, executable: "/bin/sh", arguments: ["-c", "sleep 30 & echo $!; wait"],
                stdin: .ignore, ownProcessGroup: true
            ) { exits.append($0) }
            defer { sh.close() }
            #expect(sh.ownsProcessGroup)
            try sh.stdout!.startReading { event in
                if case .bytes(let bytes) = event { output += bytes }
            }
            try drive(loop, "the background PID") { output.last == UInt8(ascii: "\n") }
            let background = try #require(Int32(String(decoding: output.dropLast(), as: UTF8.self)))
            #expect(processGroup(of: sh.pid) == sh.pid, "the shell leads a group of its own")
            #expect(processGroup(of: background) == sh.pid, "its child is in that group")
            #expect(processGroup(of: getpid()) != sh.pid)

            try sh.signalGroup(SIGKILL)
            try drive(loop, "the shell killed") { !exits.isEmpty }
            #expect(exits == [ChildProcess.ExitStatus(code: 0, signal: SIGKILL)])
            // The background sleep got the signal too (its parent's exit alone would not end it).
            try drive(loop, "the background sleep gone") { processGroup(of: background) == nil }
            // A zombie left to an init that does not reap still counts for kill(); only once the
            // whole group is reaped does the group signal answer ESRCH.
            let after = caught { () throws(UVError) in try sh.signalGroup(0) }
            #expect(after == nil || after?.name == "ESRCH")
        }
    }

    @Test func signallingTheGroupOfAChildWithoutOneIsRefused() throws {
        try withLoop { loop in
            let (sleeper, exits) = try sleep30(on: loop)
            defer { sleeper.close() }
            #expect(!sleeper.ownsProcessGroup)
            // Its group is this process's own: signalling it would hit the test runner.
            #expect(caught { () throws(UVError) in try sleeper.signalGroup(SIGKILL) }?.name == "EINVAL")
            try sleeper.kill(SIGKILL)
            try drive(loop, "sleep killed") { !exits.statuses.isEmpty }
        }
    }

    @Test func spawnFailureThrowsAndLeaksNothing() throws {
        try withLoop { loop in
            let error = caught { () throws(UVError) in
                _ = try ChildProcess(loop: loop, executable: "/nonexistent/program") { _ in
                    Issue.record("exit callback for a process that never started")
                }
            }
            #expect(error?.name == "ENOENT")
            let nul = caught { () throws(UVError) in
                _ = try ChildProcess(loop: loop, executable: "/bin/echo", arguments: ["a\0b"]) { _ in }
            }
            #expect(nul?.name == "EINVAL")
        }
        // withLoop closing the loop proves the failed spawn's process and pipe handles were closed.
    }
}


/// A child's exit statuses, recorded by its exit callback.
private final class Exits {
    var statuses: [ChildProcess.ExitStatus] = []
}

/// `/bin/sleep 30`, without stdin or stdout, and where its exits are recorded.
private func sleep30(on loop: EventLoop) throws -> (ChildProcess, Exits) {
    let exits = Exits()
    let sleeper = try ChildProcess(loop: loop, executable: "/bin/sleep", arguments: ["30"], stdin: .ignore, stdout: .ignore) {
        exits.statuses.append($0)
    }
    return (sleeper, exits)
}

/// The process group of `pid`, or nil when it is gone or a zombie.
private func processGroup(of pid: Int32) -> Int32? {
    RunningProcess.read(pid)?.group
}
