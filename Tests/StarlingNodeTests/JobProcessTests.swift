import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Jobs through real worker processes on loopback: routing, failover without loss, bad input.
@Suite(.serialized) struct JobProcessTests {
    /// Starts `count` workers of `service` (the first is the seed) and waits until they agree.
    private func cluster(_ service: String, count: Int, definition: String) throws -> [WorkerProcess] {
        let jobs = try WorkerProcess.jobsDirectory(service: service, definition: definition)
        let seed = try WorkerProcess(service: service, extra: ["--jobs", jobs])
        var all = [seed]
        for _ in 1..<count {
            all.append(try WorkerProcess(service: service, join: [seed.address], extra: ["--jobs", jobs]))
        }
        guard awaitAgreement(all, within: 10) != nil else {
            all.forEach { $0.kill() }
            throw JobTestError.noAgreement
        }
        return all
    }

    @Test("6,000 pipelined jobs through two standbys; kill -9 of the primary and of a standby: none lost")
    func noJobLostUnderKills() async throws {
        let workers = try cluster("echo", count: 5, definition: "handler = \"echo\"\nconcurrency = 8\n")
        defer { workers.forEach { $0.kill() } }
        let primaryID = try #require(workers[0].status()?.primaries(of: "echo").first?.id)
        let primary = try #require(workers.first { $0.id == primaryID })
        let standbys = workers.filter { $0 !== primary }
        let entries = Array(standbys.prefix(2))
        let victim = standbys[2]

        let total = 6_000
        let primaryPID = primary.pid, victimPID = victim.pid
        let clients = try entries.map {
            try StarlingClient(nodes: [$0.address.description], configuration: .init())
        }
        let started = ContinuousClock.now
        let results = try await submitConcurrently(total, afterAnswer: { count in
            if count == 2_000 { _ = Glibc.kill(primaryPID, SIGKILL) }
            if count == 4_000 { _ = Glibc.kill(victimPID, SIGKILL) }
        }) { n in
            try await clients[n % 2].submit(service: "echo", payload: Array("payload-\(n)-\(n &* 7919)".utf8), key: "job-\(n)")
        }
        let elapsed = ContinuousClock.now - started
        for client in clients { await client.close() }

        #expect(results.count == total)
        let wrong = results.filter { n, answer in answer != .ok(Array("payload-\(n)-\(n &* 7919)".utf8)) }
        #expect(wrong.isEmpty, "\(wrong.count) jobs not answered OK with their own payload, e.g. \(wrong.prefix(3))")
        print("6,000 jobs with kill -9 of the primary at 2,000 and of a standby at 4,000: \(results.count) answered, \(wrong.count) wrong, in \(elapsed)")
        primary.kill()
        victim.kill()
        #expect(primary.process.exitStatus?.signal == SIGKILL)
        #expect(victim.process.exitStatus?.signal == SIGKILL)
    }

    @Test("a client whose worker is killed resubmits elsewhere; every job answered once")
    func clientFailsOverToAnotherWorker() async throws {
        let workers = try cluster("slowecho", count: 3, definition: "handler = \"sleep\"\nconcurrency = 4\n")
        defer { workers.forEach { $0.kill() } }
        let primaryID = try #require(workers[0].status()?.primaries(of: "slowecho").first?.id)
        let standbys = workers.filter { $0.id != primaryID }
        let doomed = standbys[0]
        let doomedPID = doomed.pid
        let client = try StarlingClient(
            nodes: [doomed.address.description, standbys[1].address.description], configuration: .init())
        let total = 40
        // The client's worker is killed after 8 answers, with most of the jobs still in flight.
        let results = try await submitConcurrently(total, afterAnswer: { count in
            if count == 8 { _ = Glibc.kill(doomedPID, SIGKILL) }
        }) { n in
            try await client.submit(service: "slowecho", payload: Array("50".utf8), key: "slow-\(n)")
        }
        await client.close()
        #expect(results.count == total)
        #expect(results.values.allSatisfy { if case .ok = $0 { true } else { false } }, "\(results.values.filter { if case .ok = $0 { false } else { true } })")
    }

    @Test("SIGTERM drains: the entry node, a busy standby and the primary stop under load; every job answered OK")
    func sigtermDrainsWithoutLosingJobs() async throws {
        let workers = try cluster("drain", count: 4, definition: "handler = \"sleep\"\nconcurrency = 2\n")
        defer { workers.forEach { $0.kill() } }
        let primaryID = try #require(workers[0].status()?.primaries(of: "drain").first?.id)
        let primary = try #require(workers.first { $0.id == primaryID })
        let standbys = workers.filter { $0 !== primary }
        let entry = standbys[0]
        // The client knows the entry node first and one other worker, for after the entry has gone.
        let client = try StarlingClient(
            nodes: [entry.address.description, standbys[2].address.description], configuration: .init())
        let pids = (entry: entry.pid, standby: standbys[1].pid, primary: primary.pid)
        let total = 60
        // A busy standby, then the entry node, then the primary get SIGTERM while jobs are in flight.
        let results = try await submitConcurrently(total, afterAnswer: { count in
            if count == 10 { _ = Glibc.kill(pids.standby, SIGTERM) }
            if count == 20 { _ = Glibc.kill(pids.entry, SIGTERM) }
            if count == 30 { _ = Glibc.kill(pids.primary, SIGTERM) }
        }) { n in
            try await client.submit(service: "drain", payload: Array("40".utf8), key: "drain-\(n)")
        }
        await client.close()
        #expect(results.count == total)
        let notOK = results.filter { if case .ok = $0.value { false } else { true } }
        #expect(notOK.isEmpty, "\(notOK)")
        for worker in [entry, standbys[1], primary] {
            let exited = await pollAsync(within: .seconds(10)) { () -> Bool? in worker.process.isRunning ? nil : true }
            #expect(exited == true, "a drained worker exits")
            if exited == true {
                #expect(worker.process.exitStatus == ChildProcess.ExitStatus(code: 0, signal: 0))
            }
        }
    }

    @Test("bad input: NO_SERVICE, TOO_LARGE then still usable, BAD_REQUEST, same key with another payload, FAIL with stderr, FAIL on timeout")
    func badInputGetsClearAnswers() throws {
        let jobs = try WorkerProcess.jobsDirectory(
            service: "broken", definition: "command = [\"/bin/sh\", \"-c\", \"echo boom >&2; exit 3\"]\n")
        try Data("command = [\"/bin/sleep\", \"60\"]\ntimeout_ms = 300\n".utf8)
            .write(to: URL(fileURLWithPath: jobs).appendingPathComponent("hang.toml"))
        try Data("handler = \"echo\"\n".utf8).write(to: URL(fileURLWithPath: jobs).appendingPathComponent("echo.toml"))
        let broken = try WorkerProcess(service: "broken", extra: ["--jobs", jobs])
        defer { broken.kill() }
        let hang = try WorkerProcess(service: "hang", join: [broken.address], extra: ["--jobs", jobs])
        defer { hang.kill() }
        let echo = try WorkerProcess(service: "echo", join: [broken.address], extra: ["--jobs", jobs])
        defer { echo.kill() }
        #expect(awaitAgreement([broken, hang, echo], within: 10) != nil)
        let port = echo.address.port

        let unknown = try exchange("SUBMIT nope k1 1\r\nx\r\n", port: port)
        #expect(unknown.hasPrefix("ERR k1 NO_SERVICE "))

        let big = 2 << 20
        var request = Array("SUBMIT echo big \(big)\r\n".utf8) + [UInt8](repeating: 0x41, count: big) + Array("\r\n".utf8)
        request += Array("SUBMIT echo after 2\r\nok\r\n".utf8)
        let tooLarge = try exchange(request, port: port)
        #expect(tooLarge.hasPrefix("ERR big TOO_LARGE "))
        #expect(tooLarge.hasSuffix("OK after 2\r\nok\r\n"))

        let malformed = try exchange("SUBMIT echo\r\n", port: port)
        #expect(malformed.hasPrefix("ERR - BAD_REQUEST "))

        // A key is bound to its first payload: another one is refused, on this node or another.
        #expect(try exchange("SUBMIT echo bound 5\r\nfirst\r\n", port: port) == "OK bound 5\r\nfirst\r\n")
        for entry in [echo, broken] {
            let conflict = try exchange("SUBMIT echo bound 6\r\nsecond\r\n", port: entry.address.port)
            #expect(conflict == "ERR bound BAD_REQUEST key already used with a different payload\r\n", "at \(entry.address)")
        }
        #expect(try exchange("SUBMIT echo bound 5\r\nfirst\r\n", port: broken.address.port) == "OK bound 5\r\nfirst\r\n")

        let failed = try exchange("SUBMIT broken f1 0\r\n\r\n", port: port)
        #expect(failed.hasPrefix("FAIL f1 "))
        #expect(failed.contains("exit status 3") && failed.contains("boom"))

        let timedOut = try exchange("SUBMIT hang h1 0\r\n\r\n", port: port, timeoutMs: 10_000)
        #expect(timedOut.hasPrefix("FAIL h1 "))
        #expect(timedOut.contains("timed out"))
        // The hung process is gone: no /bin/sleep 60 is left as a child of the hang worker.
        let orphan = poll(within: .seconds(5)) { () -> Bool? in
            RunningProcess.children(of: hang.pid).isEmpty ? true : nil
        }
        #expect(orphan == true)
    }

    private func exchange(_ text: String, port: UInt16, timeoutMs: Int = 5_000) throws -> String {
        try exchange(Array(text.utf8), port: port, timeoutMs: timeoutMs)
    }

    /// Sends `bytes`, half-closes, and reads every answer: the worker closes once it has answered all.
    private func exchange(_ bytes: [UInt8], port: UInt16, timeoutMs: Int = 5_000) throws -> String {
        String(decoding: try RawSocket.exchangeTCP(bytes, with: port, timeoutMs: timeoutMs), as: UTF8.self)
    }
}

enum JobTestError: Error { case noAgreement }

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Submits `count` jobs at once (`submit(n)` sends job n) and returns every answer by n;
/// `afterAnswer` gets the number of answers so far after each one, to act at a given point.
func submitConcurrently(
    _ count: Int, afterAnswer: @escaping @Sendable (Int) -> Void = { _ in },
    _ submit: @escaping @Sendable (Int) async throws -> JobAnswer
) async throws -> [Int: JobAnswer] {
    let answered = Counter()
    return try await withThrowingTaskGroup(of: (Int, JobAnswer).self) { group in
        for n in 0..<count {
            group.addTask {
                let answer = try await submit(n)
                afterAnswer(answered.value.add(1, ordering: .relaxed).newValue)
                return (n, answer)
            }
        }
        var answers: [Int: JobAnswer] = [:]
        for try await (n, answer) in group { answers[n] = answer }
        return answers
    }
}
