import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real `starling worker` processes on loopback (issue 2, "Must show"). Serialized: the machine
/// has two cores and the failover timings should not compete with another test's processes.
@Suite("Worker processes on loopback", .serialized)
struct WorkerProcessTests {
    @Test("five workers of two service types agree on one primary per service within 5 s")
    func fiveWorkersAgree() throws {
        let port = try RawSocket.freePort()
        let first = try WorkerProcess(service: "alpha", port: port)
        defer { first.kill() }
        #expect(first.address == .ipv4(127, 0, 0, 1, port: port))
        let started = ContinuousClock.now
        let others = try ["alpha", "beta", "alpha", "beta"].map {
            try WorkerProcess(service: $0, join: [first.address])
        }
        defer { others.forEach { $0.kill() } }
        let all = [first] + others
        let primaries = awaitAgreement(all, within: 5)
        print("five workers agreed on one primary per service after \((ContinuousClock.now - started).milliseconds) ms")
        try #require(primaries != nil, "no agreement within 5 s: \(all.map { $0.status().map(describe) ?? "no answer" })")

        // Graceful stop: SIGTERM makes the alpha primary step down, say goodbye and exit 0.
        let leaver = try #require(all.first { $0.id == primaries!["alpha"]!.id })
        let stoppedAt = ContinuousClock.now
        leaver.signal(SIGTERM)
        let exited = poll(within: .seconds(3)) { leaver.process.isRunning ? nil : true }
        try #require(exited == true, "still running after SIGTERM; log:\n\(leaver.log)")
        #expect(leaver.process.exitStatus == ChildProcess.ExitStatus(code: 0, signal: 0))
        #expect(leaver.log.contains("primary -> standby"))
        let rest = all.filter { $0 !== leaver }
        let successor = poll(within: .seconds(3)) { () -> StatusReport.Entry? in
            let views = rest.compactMap { $0.status() }
            guard views.count == rest.count,
                  views.allSatisfy({ !$0.members.contains { $0.id == leaver.id } && $0.primaries(of: "alpha").count == 1 })
            else { return nil }
            return views[0].primaries(of: "alpha").first
        }
        print("after SIGTERM of the alpha primary, a successor was agreed after \((ContinuousClock.now - stoppedAt).milliseconds) ms")
        #expect(successor != nil && successor!.epoch > primaries!["alpha"]!.epoch)
    }

    @Test("kill -9 of a primary: a survivor shows a new primary with a higher epoch")
    func failoverAfterKill() throws {
        let seed = try WorkerProcess(service: "kappa")
        defer { seed.kill() }
        let others = try (0..<2).map { _ in try WorkerProcess(service: "kappa", join: [seed.address]) }
        defer { others.forEach { $0.kill() } }
        let all = [seed] + others
        let old = try #require(awaitAgreement(all, within: 5)?["kappa"])
        let (victim, successor, elapsed) = try killPrimaryAndAwaitSuccessor(old, of: "kappa", among: all)
        print("kill -9 of the primary: new primary with a higher epoch shown after \(elapsed.milliseconds) ms (target 600 ms)")
        try #require(successor != nil)
        #expect(elapsed < .seconds(2))
        victim.kill()
        #expect(victim.process.exitStatus?.signal == SIGKILL)
    }

    @Test("a higher-priority worker takes over through to-become-primary, never two primaries")
    func priorityTakeover() throws {
        let seed = try WorkerProcess(service: "lambda")
        defer { seed.kill() }
        let second = try WorkerProcess(service: "lambda", join: [seed.address])
        defer { second.kill() }
        let old = try #require(awaitAgreement([seed, second], within: 5)?["lambda"])

        let newcomer = try WorkerProcess(service: "lambda", join: [seed.address], priority: 5)
        defer { newcomer.kill() }
        let all = [seed, second, newcomer]
        var polls = 0
        var doubles: [String] = []
        let startedAt = ContinuousClock.now
        let done = poll(within: .seconds(5), every: .milliseconds(1)) { () -> Bool? in
            var settled = true
            for worker in all {
                guard let report = worker.status(timeoutMs: 500) else {
                    settled = false
                    continue
                }
                polls += 1
                let primaries = report.primaries(of: "lambda")
                if primaries.count > 1 { doubles.append(describe(report)) }
                if primaries.map(\.id) != [newcomer.id] || report.members.count != 3 { settled = false }
            }
            return settled ? true : nil
        }
        print("priority takeover settled after \((ContinuousClock.now - startedAt).milliseconds) ms, \(polls) STATUS polls")
        #expect(done == true)
        #expect(doubles.isEmpty, "STATUS showed two primaries: \(doubles)")
        let log = newcomer.log
        #expect(log.contains("-> to-become-primary"), "newcomer log:\n\(log)")
        #expect(log.contains("to-become-primary -> primary"), "newcomer log:\n\(log)")
        #expect(all.first { $0.id == old.id }!.log.contains("primary -> standby"))
        let epoch = newcomer.status()?.selfEntry?.epoch ?? 0
        #expect(epoch > old.epoch)
    }

    @Test("SIGSTOP of a primary past the failure timeout, then SIGCONT: it steps down, its epoch is stale")
    func pausedPrimaryStepsDown() throws {
        let seed = try WorkerProcess(service: "mu")
        defer { seed.kill() }
        let others = try (0..<2).map { _ in try WorkerProcess(service: "mu", join: [seed.address]) }
        defer { others.forEach { $0.kill() } }
        let all = [seed] + others
        let old = try #require(awaitAgreement(all, within: 5)?["mu"])
        let paused = try #require(all.first { $0.id == old.id })
        let survivors = all.filter { $0 !== paused }

        paused.signal(SIGSTOP)
        defer { paused.signal(SIGCONT) }
        // Past the failure timeout: every survivor has dropped it and agrees on a successor.
        let successor = poll(within: .seconds(5)) { () -> StatusReport.Entry? in
            let views = survivors.compactMap { $0.status() }
            guard views.count == survivors.count,
                  views.allSatisfy({ !$0.members.contains { $0.id == old.id } }),
                  let first = views[0].primaries(of: "mu").first,
                  views.allSatisfy({ $0.primaries(of: "mu").map(\.id) == [first.id] })
            else { return nil }
            return first
        }
        let next = try #require(successor)
        #expect(next.epoch > old.epoch)

        let resumedAt = ContinuousClock.now
        paused.signal(SIGCONT)
        var doubles: [String] = []
        let steppedDown = poll(within: .seconds(3), every: .milliseconds(2)) { () -> StatusReport? in
            for survivor in survivors {
                if let view = survivor.status(timeoutMs: 500), view.primaries(of: "mu").count > 1 {
                    doubles.append(describe(view))
                }
            }
            guard let view = paused.status(timeoutMs: 500), view.selfStatus == .standby,
                  view.primaries(of: "mu").map(\.id) == [next.id] else { return nil }
            return view
        }
        print("resumed primary stepped down \((ContinuousClock.now - resumedAt).milliseconds) ms after SIGCONT")
        let view = try #require(steppedDown)
        #expect(ContinuousClock.now - resumedAt < .seconds(1))
        // Its own epoch (as primary) was stale: the successor's is higher, and it now follows it.
        #expect(old.epoch < next.epoch)
        #expect(view.primaries(of: "mu").first!.epoch == next.epoch)
        #expect(doubles.isEmpty, "a survivor showed two primaries: \(doubles)")
        #expect(paused.log.contains("primary -> standby"))
    }

    @Test("hostile heartbeats and TCP garbage: no crash, membership unchanged, rejections counted and logged")
    func hostileInput() throws {
        let target = try WorkerProcess(service: "nu")
        defer { target.kill() }
        let peer = try WorkerProcess(service: "nu", join: [target.address])
        defer { peer.kill() }
        try #require(awaitAgreement([target, peer], within: 5) != nil)
        let before = try #require(target.status())

        var rng = SystemRandomNumberGenerator()
        let forged = HeartbeatCodec.encode(Heartbeat(
            sender: NodeID(high: 1, low: 2), service: try ServiceName("nu"), status: .primary, priority: 1_000,
            epoch: 999, workload: Workload(), address: .ipv4(127, 0, 0, 1, port: 9), flags: [], sequence: 1))
        var randomBytes: [[UInt8]] = (0..<40).map { _ in
            var bytes = (0..<Int.random(in: 2...1_200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            bytes[0] = 0x00  // never the magic, so each is a bad_magic
            return bytes
        }
        let badMagicCount = randomBytes.count
        randomBytes.append([])  // an empty datagram: truncated
        let truncated = [1, 2, 3, 8, 20, forged.count / 2, forged.count - 1].map { Array(forged.prefix($0)) }
        let oversized = [forged + [UInt8](repeating: 0xAB, count: 2_000), [UInt8](repeating: 0x53, count: 60_000)]
        var wrongVersion = forged
        wrongVersion[2] = 99
        let datagrams = randomBytes + truncated + oversized + [wrongVersion]
        try RawSocket.sendUDP(datagrams, to: target.address.port)

        let line = try RawSocket.exchangeTCP([UInt8](repeating: 0x41, count: 5_000), with: target.address.port)
        #expect(String(decoding: line, as: UTF8.self).hasPrefix("ERR - BAD_REQUEST"))
        // Client garbage: a first byte of 0 would make it a peer connection, closed without an answer.
        var garbage = [UInt8.random(in: 1...255, using: &rng)] + (1..<3_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        garbage += Array("\r\nHELLO\r\nPING\r\n".utf8)
        let answers = String(decoding: try RawSocket.exchangeTCP(garbage, with: target.address.port, timeoutMs: 10_000), as: UTF8.self)
        #expect(answers.contains("ERR - BAD_REQUEST"))

        let udpRejected = poll(within: .seconds(3)) { () -> StatusReport? in
            guard let report = target.status() else { return nil }
            let udp = report.rejected.filter { !$0.key.hasPrefix("client_") }.values.reduce(0, +)
            return udp >= UInt64(datagrams.count) ? report : nil
        }
        let after = try #require(udpRejected, "rejections: \(target.status()?.rejected ?? [:])")
        print("rejection counters after hostile input: \(after.rejected.sorted { $0.key < $1.key })")
        #expect(after.rejected["bad_magic", default: 0] >= UInt64(badMagicCount))
        #expect(after.rejected["truncated", default: 0] >= UInt64(truncated.count + 1))
        #expect(after.rejected["oversized", default: 0] >= UInt64(oversized.count))
        #expect(after.rejected["unsupported_version", default: 0] >= 1)
        #expect(after.rejected.filter { $0.key.hasPrefix("client_") }.values.reduce(0, +) >= 2)
        // Membership unchanged: same members, same statuses, no forged identity.
        #expect(Set(after.members.map(\.id)) == Set(before.members.map(\.id)))
        #expect(after.members.map(\.status) == before.members.map(\.status))
        #expect(target.process.isRunning)
        #expect(String(decoding: try RawSocket.exchangeTCP(Array("PING\r\n".utf8), with: target.address.port), as: UTF8.self) == "PONG\r\n")
        #expect(target.log.contains("rejected:"))
    }
}

/// Waits until every worker's record holds all of them, admitted, with exactly one primary per
/// service, the same one everywhere; returns the primaries by service.
func awaitAgreement(_ workers: [WorkerProcess], within seconds: Double) -> [String: StatusReport.Entry]? {
    let services = Set(workers.map(\.service))
    let ids = Set(workers.map(\.id))
    return poll(within: .milliseconds(Int(seconds * 1000))) { () -> [String: StatusReport.Entry]? in
        var agreed: [String: StatusReport.Entry]?
        for worker in workers {
            guard let report = worker.status(), Set(report.members.map(\.id)) == ids,
                  report.members.allSatisfy({ $0.status != .joining }) else { return nil }
            var primaries: [String: StatusReport.Entry] = [:]
            for service in services {
                let claims = report.primaries(of: service)
                guard claims.count == 1 else { return nil }
                primaries[service] = claims[0]
            }
            if let agreed, agreed.mapValues(\.id) != primaries.mapValues(\.id) { return nil }
            agreed = primaries
        }
        return agreed
    }
}

/// Kills the primary `old` of `service`, one of `workers`, with -9, and waits (at most 5 s) until a
/// survivor shows another primary of the service with a higher epoch; returns the killed worker,
/// the successor (nil if none came) and how long it took.
func killPrimaryAndAwaitSuccessor(
    _ old: StatusReport.Entry, of service: String, among workers: [WorkerProcess]
) throws -> (victim: WorkerProcess, successor: StatusReport.Entry?, elapsed: Duration) {
    let victim = try #require(workers.first { $0.id == old.id })
    let survivors = workers.filter { $0 !== victim }
    let killedAt = ContinuousClock.now
    victim.signal(SIGKILL)
    let successor = poll(within: .seconds(5), every: .milliseconds(2)) { () -> StatusReport.Entry? in
        for worker in survivors {
            if let entry = worker.status(timeoutMs: 500)?.primaries(of: service).first(where: {
                $0.id != old.id && $0.epoch > old.epoch
            }) { return entry }
        }
        return nil
    }
    return (victim, successor, ContinuousClock.now - killedAt)
}

extension Duration {
    /// Whole milliseconds, for a test's printed figures.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

private func describe(_ report: StatusReport) -> String {
    report.members.map { "\($0.id.short):\($0.service.value):\($0.status):e\($0.epoch)" }.joined(separator: " ")
}
