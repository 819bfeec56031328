import Foundation
import Glibc
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Runs `body` with a fresh loop, then closes it, which fails if any handle or request was left.
private func withJobLoop(_ body: (EventLoop) throws -> Void) throws {
    let loop = try EventLoop()
    do {
        try body(loop)
    } catch {
        try? loop.close()
        throw error
    }
    try loop.close()
}

/// Runs `loop` until `condition` holds (a 5 ms ticker wakes it to re-check); false at the deadline.
private func runLoop(_ loop: EventLoop, timeoutMs: UInt64 = 5000, until condition: () -> Bool) throws -> Bool {
    let ticker = try Timer(loop: loop)
    defer { ticker.close() }
    try ticker.start(afterMs: 5, repeatMs: 5) {}
    return try loop.run(until: condition, timeoutMs: timeoutMs)
}

private func definition(_ handler: ServiceDefinition.Handler, timeoutMs: Int64 = 10_000) throws -> ServiceDefinition {
    ServiceDefinition(service: try ServiceName("test"), handler: handler, timeoutMs: timeoutMs)
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private let testKey = try! JobKey("test-key")

/// A job's completions, recorded so a test can check there is exactly one.
private final class Completions {
    var outcomes: [JobOutcome] = []
    var first: JobOutcome? { outcomes.first }
    func record(_ outcome: JobOutcome) { outcomes.append(outcome) }
}

/// Runs one job to completion and checks that its completion ran later than `start`, and once.
private func run(
    _ handler: any JobHandler, _ payload: [UInt8], on loop: EventLoop, timeoutMs: UInt64 = 10_000,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> JobOutcome? {
    let completions = Completions()
    _ = handler.start(key: testKey, payload: payload, completion: completions.record)
    #expect(completions.outcomes.isEmpty, "completion ran inside start", sourceLocation: sourceLocation)
    let done = try loop.run(until: { !completions.outcomes.isEmpty }, timeoutMs: timeoutMs)
    #expect(done, "no completion within \(timeoutMs) ms", sourceLocation: sourceLocation)
    for _ in 0..<3 { loop.runOnce(nowait: true) }
    #expect(completions.outcomes.count <= 1, "completion ran twice", sourceLocation: sourceLocation)
    return completions.first
}

private func failure(_ outcome: JobOutcome?) -> String? {
    if case .failed(let reason) = outcome { reason } else { nil }
}

@Suite struct BuiltinHandlerTests {
    @Test func echoAnswersWithThePayload() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.echo)), loop: loop)
            for payload in [[], bytes("hello"), (0...255).map { UInt8($0) }] {
                #expect(try run(handler, payload, on: loop) == .succeeded(payload))
            }
        }
    }

    @Test func sleepWaitsOnATimerAndSaysSo() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.sleep), timeoutMs: 1000), loop: loop)
            loop.updateTime()
            let startMs = loop.now
            #expect(try run(handler, bytes(" 50\n"), on: loop) == .succeeded(bytes("slept 50 ms")))
            loop.updateTime()
            #expect(loop.now - startMs >= 50)
            #expect(try run(handler, bytes("0"), on: loop) == .succeeded(bytes("slept 0 ms")))
            #expect(try run(handler, bytes("1000"), on: loop) == .succeeded(bytes("slept 1000 ms")))
        }
    }

    @Test func sleepRejectsBadPayloads() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.sleep), timeoutMs: 1000), loop: loop)
            for payload in ["", " ", "abc", "-5", "+5", "1.5", "1e3", "1001", "5 5", "99999999999999999999999"] {
                #expect(try run(handler, bytes(payload), on: loop)
                    == .failed("sleep: payload must be decimal milliseconds in 0...1000"), "payload \(payload)")
            }
        }
    }

    @Test func sleepDoesNotBlockTheLoop() throws {
        try withJobLoop { loop in
            let sleeper = makeHandler(for: try definition(.builtin(.sleep)), loop: loop)
            let echo = makeHandler(for: try definition(.builtin(.echo)), loop: loop)
            let slept = Completions()
            let echoed = Completions()
            _ = sleeper.start(key: testKey, payload: bytes("300"), completion: slept.record)
            _ = echo.start(key: testKey, payload: bytes("x"), completion: echoed.record)
            #expect(try loop.run(until: { echoed.first != nil }, timeoutMs: 5000))
            #expect(slept.first == nil, "echo waited for the sleep")
            #expect(try loop.run(until: { slept.first != nil }, timeoutMs: 5000))
            #expect(slept.first == .succeeded(bytes("slept 300 ms")))
        }
    }

    @Test func cancelEndsASleepOnceWithCancelled() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.sleep), timeoutMs: 60_000), loop: loop)
            let completions = Completions()
            let job = handler.start(key: testKey, payload: bytes("50000"), completion: completions.record)
            job.cancel()
            #expect(completions.outcomes.isEmpty, "completion ran inside cancel")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 2000))
            job.cancel()
            for _ in 0..<3 { loop.runOnce(nowait: true) }
            #expect(completions.outcomes == [.failed("cancelled")])
        }
    }

    @Test func sha256AnswersWithTheLowercaseHexDigest() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.sha256)), loop: loop)
            #expect(try run(handler, bytes("abc"), on: loop)
                == .succeeded(bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")))
            #expect(try run(handler, [], on: loop)
                == .succeeded(bytes("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")))
            // Large enough to be hashed on the thread pool, in more than one chunk.
            let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
            #expect(try run(handler, million, on: loop)
                == .succeeded(bytes("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")))
            let twoChunks = [UInt8](repeating: UInt8(ascii: "a"), count: 3 << 20)
            #expect(try run(handler, twoChunks, on: loop).map { if case .succeeded(let hex) = $0 { hex.count } else { 0 } } == 64)
        }
    }

    @Test func spinBurnsCPUOffTheLoopThread() throws {
        try withJobLoop { loop in
            let spinner = makeHandler(for: try definition(.builtin(.spin)), loop: loop)
            #expect(try run(spinner, bytes("20000"), on: loop) == .succeeded(bytes("spun 20000 us")))
            let echo = makeHandler(for: try definition(.builtin(.echo)), loop: loop)
            let spun = Completions()
            let echoed = Completions()
            _ = spinner.start(key: testKey, payload: bytes("300000"), completion: spun.record)
            _ = echo.start(key: testKey, payload: bytes("x"), completion: echoed.record)
            #expect(try loop.run(until: { echoed.first != nil }, timeoutMs: 5000))
            #expect(spun.first == nil, "the loop waited for the spin")
            #expect(try loop.run(until: { spun.first != nil }, timeoutMs: 10_000))
            #expect(spun.first == .succeeded(bytes("spun 300000 us")))
        }
    }

    @Test func spinRejectsBadPayloads() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.spin), timeoutMs: 100), loop: loop)
            for payload in ["", "fast", "100001", "-1"] {
                #expect(try run(handler, bytes(payload), on: loop)
                    == .failed("spin: payload must be decimal microseconds in 0...100000"), "payload \(payload)")
            }
        }
    }

    @Test func cancelStopsASpinPromptly() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.builtin(.spin), timeoutMs: 60_000), loop: loop)
            let completions = Completions()
            let job = handler.start(key: testKey, payload: bytes("30000000"), completion: completions.record)
            loop.runOnce(nowait: true)
            job.cancel()
            #expect(completions.outcomes.isEmpty, "completion ran inside cancel")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 2000))
            #expect(completions.outcomes == [.failed("cancelled")])
        }
    }

    @Test func spinTimesOutWhenThePoolIsBusy() throws {
        try withJobLoop { loop in
            // One more full-length spin than libuv has pool threads: the last one cannot even start
            // before its deadline, so it must time out.
            let poolSize = getenv("UV_THREADPOOL_SIZE").flatMap { Int(String(cString: $0)) } ?? 4
            let handler = makeHandler(for: try definition(.builtin(.spin), timeoutMs: 250), loop: loop)
            let all = (0...poolSize).map { _ in Completions() }
            for completions in all {
                _ = handler.start(key: testKey, payload: bytes("250000"), completion: completions.record)
            }
            #expect(try loop.run(until: { all.allSatisfy { $0.first != nil } }, timeoutMs: 10_000))
            #expect(all.last?.outcomes == [.failed("timed out after 250 ms")])
            for completions in all {
                #expect(completions.outcomes.count == 1)
                #expect([.succeeded(bytes("spun 250000 us")), .failed("timed out after 250 ms")]
                    .contains(completions.first))
            }
        }
    }
}

@Suite struct CommandHandlerTests {
    init() {
        // A program may exit before reading its stdin; writing to its pipe then raises SIGPIPE,
        // which would kill this process. Like a worker process, the tests ignore it (EPIPE instead).
        signal(SIGPIPE, SIG_IGN)
    }

    /// A directory for PID files, removed by the caller.
    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-cmd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// Drives the loop until `file` holds a PID; returns it.
    private func waitForPID(in file: String, loop: EventLoop) throws -> pid_t? {
        var pid: pid_t?
        _ = try runLoop(loop) {
            pid = (try? String(contentsOfFile: file, encoding: .utf8))
                .flatMap { $0.hasSuffix("\n") ? pid_t($0.dropLast()) : nil }
            return pid != nil
        }
        return pid
    }

    private func isGone(_ pid: pid_t) -> Bool {
        kill(pid, 0) == -1 && errno == ESRCH
    }

    @Test func theShippedUpperHandlerUpperCases() throws {
        try withJobLoop { loop in
            let upper = try ServiceDefinitionLoader.load(
                service: try ServiceName("upper"), directory: "\(repositoryRoot)/jobs")
            let handler = makeHandler(for: upper, loop: loop)
            #expect(try run(handler, bytes("Hello, starling!\n"), on: loop) == .succeeded(bytes("HELLO, STARLING!\n")))
            #expect(try run(handler, [], on: loop) == .succeeded([]))
        }
    }

    @Test func stdinRoundTripsThroughCat() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.command(["/bin/cat"])), loop: loop)
            let payload = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            #expect(try run(handler, payload, on: loop) == .succeeded(payload))
        }
    }

    @Test func manyCommandsRunAtOnce() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.command(["/bin/cat"])), loop: loop)
            let all = (0..<20).map { _ in Completions() }
            for (index, completions) in all.enumerated() {
                _ = handler.start(key: testKey, payload: bytes("job \(index)"), completion: completions.record)
            }
            #expect(try loop.run(until: { all.allSatisfy { $0.first != nil } }, timeoutMs: 20_000))
            for (index, completions) in all.enumerated() {
                #expect(completions.outcomes == [.succeeded(bytes("job \(index)"))])
            }
        }
    }

    @Test func aNonZeroExitFailsWithTheStderrTail() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.command(["/bin/sh", "-c", "echo boom >&2; exit 3"])), loop: loop)
            #expect(try run(handler, bytes("input"), on: loop) == .failed("exit status 3: boom"))
            let quiet = makeHandler(for: try definition(.command(["/bin/sh", "-c", "exit 4"])), loop: loop)
            #expect(try run(quiet, [], on: loop) == .failed("exit status 4"))
        }
    }

    @Test func onlyTheLastStderrBytesAreKept() throws {
        try withJobLoop { loop in
            let script = "i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done; exit 1"
            let handler = makeHandler(for: try definition(.command(["/bin/sh", "-c", script])), loop: loop)
            let reason = failure(try run(handler, [], on: loop)) ?? ""
            #expect(reason.hasPrefix("exit status 1: "))
            #expect(reason.hasSuffix("line1999"))
            #expect(reason.utf8.count <= "exit status 1: ".utf8.count + 4096)
            #expect(!reason.contains("line0\n"))
        }
    }

    @Test func aFatalSignalFails() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.command(["/bin/sh", "-c", "kill -TERM $$"])), loop: loop)
            #expect(try run(handler, [], on: loop) == .failed("killed by signal \(SIGTERM)"))
        }
    }

    @Test func aMissingProgramFailsTheJobWithoutThrowing() throws {
        try withJobLoop { loop in
            let handler = makeHandler(for: try definition(.command(["/nonexistent/program"])), loop: loop)
            let reason = failure(try run(handler, bytes("x"), on: loop)) ?? ""
            #expect(reason.hasPrefix("cannot start /nonexistent/program: ENOENT"), "\(reason)")
        }
    }

    @Test func aHangingCommandIsKilledAtTheTimeoutAndReaped() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try withJobLoop { loop in
            let script = "echo $$ > \(dir)/pid; exec /bin/sleep 60"
            let handler = makeHandler(for: try definition(.command(["/bin/sh", "-c", script]), timeoutMs: 300), loop: loop)
            let completions = Completions()
            _ = handler.start(key: testKey, payload: [], completion: completions.record)
            let pid = try waitForPID(in: "\(dir)/pid", loop: loop)
            #expect(pid != nil, "the command never wrote its PID")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 5000))
            #expect(completions.outcomes == [.failed("timed out after 300 ms; killed")])
            if let pid {
                let gone = try runLoop(loop) { isGone(pid) }
                #expect(gone, "process \(pid) still exists after the job completed")
            }
        }
    }

    @Test func cancelKillsTheProcess() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try withJobLoop { loop in
            let script = "echo $$ > \(dir)/pid; exec /bin/sleep 60"
            let handler = makeHandler(for: try definition(.command(["/bin/sh", "-c", script])), loop: loop)
            let completions = Completions()
            let job = handler.start(key: testKey, payload: [], completion: completions.record)
            let pid = try waitForPID(in: "\(dir)/pid", loop: loop)
            job.cancel()
            #expect(completions.outcomes.isEmpty, "completion ran inside cancel")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 5000))
            #expect(completions.outcomes == [.failed("cancelled")])
            if let pid {
                let gone = try runLoop(loop) { isGone(pid) }
                #expect(gone, "process \(pid) still exists after the job completed")
            }
        }
    }

    @Test func aCommandThatIgnoresItsInputIsJudgedByItsExitStatus() throws {
        // The payload is far larger than a pipe buffer, so writing it fails with EPIPE once the
        // program has exited (SIGPIPE is ignored, see `init`).
        try withJobLoop { loop in
            let payload = [UInt8](repeating: 7, count: 8 << 20)
            let ignores = makeHandler(for: try definition(.command(["/bin/sh", "-c", "exit 0"])), loop: loop)
            #expect(try run(ignores, payload, on: loop) == .succeeded([]))
            let refuses = makeHandler(for: try definition(.command(["/bin/sh", "-c", "echo nope >&2; exit 2"])), loop: loop)
            #expect(try run(refuses, payload, on: loop) == .failed("exit status 2: nope"))
            let answers = makeHandler(for: try definition(.command(["/bin/sh", "-c", "echo partial"])), loop: loop)
            #expect(try run(answers, payload, on: loop) == .succeeded(bytes("partial\n")))
        }
    }

    @Test func aCommandSeesItsJobKeyAndServiceBesideTheInheritedEnvironment() throws {
        try withJobLoop { loop in
            let script = "printf '%s|%s|%s' \"$STARLING_JOB_KEY\" \"$STARLING_SERVICE\" \"$GREETING\""
            // A stale key in the inherited environment must not reach a job.
            let handler = CommandHandler(
                loop: loop, service: try ServiceName("greeter"), argv: ["/bin/sh", "-c", script], timeoutMs: 10_000,
                inherited: ["GREETING": "hello", "STARLING_JOB_KEY": "stale", "STARLING_SERVICE": "stale"])
            let first = Completions()
            let second = Completions()
            _ = handler.start(key: try JobKey("order-17"), payload: [], completion: first.record)
            _ = handler.start(key: try JobKey("order-18"), payload: [], completion: second.record)
            #expect(try loop.run(until: { first.first != nil && second.first != nil }, timeoutMs: 5000))
            #expect(first.outcomes == [.succeeded(bytes("order-17|greeter|hello"))])
            #expect(second.outcomes == [.succeeded(bytes("order-18|greeter|hello"))])

            // By default the command inherits this process's environment.
            let path = String(cString: getenv("PATH"))
            let inheriting = makeHandler(for: try definition(.command(["/bin/sh", "-c", "printf '%s' \"$PATH\""])), loop: loop)
            #expect(try run(inheriting, [], on: loop) == .succeeded(bytes(path)))
        }
    }

    /// Starts `script(marker)` as a command job and runs the loop until `sleeps` of its `sleep
    /// marker` processes run.
    private func startSleepers(
        _ script: (String) -> String, sleeps: Int, timeoutMs: Int64 = 10_000, on loop: EventLoop,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (marker: SleepMarker, job: RunningJob, completions: Completions) {
        let marker = SleepMarker()
        let command = ServiceDefinition.Handler.command(["/bin/sh", "-c", script(marker.value)])
        let handler = makeHandler(for: try definition(command, timeoutMs: timeoutMs), loop: loop)
        let completions = Completions()
        let job = handler.start(key: testKey, payload: [], completion: completions.record)
        let started = try runLoop(loop) { marker.sleepers.count == sleeps }
        #expect(started, "the sleeps never ran", sourceLocation: sourceLocation)
        return (marker, job, completions)
    }

    @Test func aTimeoutEndsTheCommandsWholeProcessGroup() throws {
        try withJobLoop { loop in
            let (marker, _, completions) = try startSleepers({ "sleep \($0) & sleep \($0); wait" }, sleeps: 2, timeoutMs: 500, on: loop)
            let group = marker.sleepers.first?.group
            #expect(group != nil && group != getpgrp(), "the command runs in a process group of its own")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 10_000))
            #expect(completions.outcomes == [.failed("timed out after 500 ms; killed")])
            let gone = try runLoop(loop, timeoutMs: 5000) { marker.sleepers.isEmpty }
            #expect(gone, "left behind: \(marker.sleepers.map(\.pid))")
        }
    }

    @Test func aCommandThatIgnoresSIGTERMIsKilledAfterTheGracePeriod() throws {
        try withJobLoop { loop in
            // The shell and its background sleep ignore SIGTERM (an ignored signal stays ignored
            // across fork and exec).
            let (marker, _, completions) = try startSleepers({ "trap '' TERM; sleep \($0) & wait" }, sleeps: 1, timeoutMs: 300, on: loop)
            loop.updateTime()
            let startMs = loop.now
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 10_000))
            loop.updateTime()
            let tookMs = loop.now - startMs
            #expect(completions.outcomes == [.failed("timed out after 300 ms; killed")])
            // The timeout (300 ms) plus the grace period, not much more.
            #expect(tookMs >= CommandHandler.terminationGraceMs, "answered after \(tookMs) ms")
            #expect(tookMs < CommandHandler.terminationGraceMs + 2_000, "answered after \(tookMs) ms")
            let gone = try runLoop(loop) { marker.sleepers.isEmpty }
            #expect(gone, "left behind: \(marker.sleepers.map(\.pid))")
        }
    }

    @Test func cancelEndsBackgroundChildrenEvenAfterTheProgramExited() throws {
        try withJobLoop { loop in
            // The program exits at once; its background child keeps stdout open, so the job waits.
            let (marker, job, completions) = try startSleepers({ "sleep \($0) &" }, sleeps: 1, on: loop)
            job.cancel()
            #expect(completions.outcomes.isEmpty, "completion ran inside cancel")
            #expect(try loop.run(until: { completions.first != nil }, timeoutMs: 10_000))
            #expect(completions.outcomes == [.failed("cancelled")])
            let gone = try runLoop(loop) { marker.sleepers.isEmpty }
            #expect(gone, "left behind: \(marker.sleepers.map(\.pid))")
        }
    }

    @Test func tooMuchOutputKillsTheProgram() throws {
        try withJobLoop { loop in
            let handler = CommandHandler(
                loop: loop, service: try ServiceName("test"),
                argv: ["/bin/sh", "-c", "while :; do echo yyyyyyyyyyyyyyyy; done"], timeoutMs: 10_000,
                limits: CommandHandler.Limits(maxOutputBytes: 100_000))
            let outcome = try run(handler, [], on: loop)
            #expect(outcome == .failed(
                "result of more than 100000 bytes is over max_result_bytes (100000) of job \(testKey.value); killed"))
        }
    }
}

