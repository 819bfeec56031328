import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SpawnedProcessTests {
    @Test func collectsStdoutAndStderrAndFeedsStdinLargerThanAPipe() throws {
        // 1 MiB through cat: more than a pipe holds, so writing and reading must interleave.
        let input = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let cat = try SpawnedProcess(executable: "/bin/cat", arguments: [], stdin: input, stdout: .pipe, stderr: .pipe)
        let run = cat.collect(timeout: .seconds(30))
        #expect(run.status == ChildProcess.ExitStatus(code: 0, signal: 0))
        #expect(run.stdout == input)
        #expect(run.stderr.isEmpty)

        let failing = try SpawnedProcess(
            executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"], stdout: .pipe, stderr: .pipe)
        let failed = failing.collect(timeout: .seconds(30))
        #expect(failed.status == ChildProcess.ExitStatus(code: 3, signal: 0))
        #expect(failed.stdout == Array("out\n".utf8))
        #expect(failed.stderr == Array("err\n".utf8))
    }

    @Test func readLineWaitsAtMostItsTimeoutAndKillReaps() throws {
        let chatty = try SpawnedProcess(
            executable: "/bin/sh", arguments: ["-c", "echo first; echo second; exec sleep 60"], stdout: .pipe)
        #expect(chatty.readLine(timeout: .seconds(10)) == "first")
        #expect(chatty.readLine(timeout: .seconds(10)) == "second")
        let started = ContinuousClock.now
        #expect(chatty.readLine(timeout: .milliseconds(100)) == nil)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(chatty.isRunning)
        #expect(chatty.wait(timeout: .milliseconds(50)) == nil)
        chatty.kill()
        #expect(chatty.exitStatus?.signal == SIGKILL)
        #expect(!chatty.isRunning)
        // Signalling a reaped process does nothing (its PID may belong to someone else now).
        chatty.signal(SIGKILL)
    }

    @Test func collectKillsAProcessThatOverrunsItsTimeout() throws {
        let hanging = try SpawnedProcess(executable: "/bin/sleep", arguments: ["60"], stdout: .pipe)
        let started = ContinuousClock.now
        let run = hanging.collect(timeout: .milliseconds(200))
        #expect(run.status.signal == SIGKILL)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aMissingExecutableIsAClearError() {
        #expect {
            _ = try SpawnedProcess(executable: "/nonexistent/starling", arguments: [])
        } throws: { error in
            (error as? SpawnError)?.description.hasPrefix("cannot start /nonexistent/starling") == true
        }
    }
}
