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

/// Keyed workers attacked over UDP by this test process, which has no key (issue 10, item 2, and
/// docs/SECURITY.md, "Sealed heartbeats"). Serialized: the timings should not compete.
@Suite("Sealed heartbeats on loopback", .serialized)
struct HeartbeatSecurityTests {
    /// A keyed cluster of `count` workers of `echo`, agreed on one primary.
    static func keyedCluster(count: Int = 3, keyFile: String) throws -> [WorkerProcess] {
        let seed = try WorkerProcess(service: "echo", extra: ["--cluster-key-file", keyFile])
        var workers = [seed]
        for _ in 1..<count {
            workers.append(try WorkerProcess(service: "echo", join: [seed.address], extra: ["--cluster-key-file", keyFile]))
        }
        return workers
    }

    /// Each worker's view: (id, status, epoch) of every member.
    static func views(_ workers: [WorkerProcess]) -> [[String]]? {
        var out: [[String]] = []
        for worker in workers {
            guard let report = worker.status() else { return nil }
            out.append(report.members.map { "\($0.id):\($0.status):\($0.epoch)" }.sorted())
        }
        return out
    }

    /// Sends `attack` again and again for `duration` while checking that no worker's record
    /// changes; returns the records that differed from `before`.
    static func underAttack(_ workers: [WorkerProcess], for duration: Duration, _ attack: () throws -> Void) throws -> [String] {
        let before = try #require(views(workers))
        var changes: [String] = []
        _ = try poll(within: duration, every: .milliseconds(20)) { () throws -> Bool? in
            try attack()
            if let now = views(workers), now != before { changes.append("\(now)") }
            return nil
        }
        return changes
    }

    /// Submits `count` echo jobs through each worker; the ones not answered with their payload.
    static func submitJobs(_ workers: [WorkerProcess], count: Int, tag: String) async throws -> [String] {
        var wrong: [String] = []
        for (index, worker) in workers.enumerated() {
            let client = try StarlingClient(nodes: [worker.address.description], configuration: .init())
            let answers = try await submitConcurrently(count) { n in
                try await client.submit(service: "echo", payload: Array("\(tag)-\(index)-\(n)".utf8), key: "\(tag)-\(index)-\(n)")
            }
            await client.close()
            for (n, answer) in answers where answer != .ok(Array("\(tag)-\(index)-\(n)".utf8)) {
                wrong.append("\(index)/\(n): \(answer)")
            }
        }
        return wrong
    }

    static func forged(
        _ sender: NodeID, status: MemberStatus, priority: Int32, epoch: UInt64, flags: Heartbeat.Flags = [],
        sequence: UInt64, port: UInt16 = 9
    ) throws -> [UInt8] {
        HeartbeatCodec.encode(Heartbeat(
            sender: sender, service: try ServiceName("echo"), status: status, priority: priority, epoch: epoch,
            workload: Workload(running: 0, capacity: 8, backlog: 0), address: .ipv4(127, 0, 0, 1, port: port),
            flags: flags, sequence: sequence))
    }

    /// The three forgeries of issue 10 against a keyed cluster: nothing changes, jobs are
    /// answered, each datagram is counted as `heartbeat_unsealed` (or `heartbeat_unopened` for
    /// the ones dressed up as sealed).
    @Test("forged heartbeats (made-up primary, real primary with a higher epoch, a standby leaving): nothing changes", arguments: ["made-up primary", "real primary, higher epoch", "standby leaving"])
    func forgeries(_ attack: String) async throws {
        let key = try SecretFiles.newClusterKey()
        let workers = try Self.keyedCluster(keyFile: key.path)
        defer { workers.forEach { $0.kill() } }
        let primary = try #require(awaitAgreement(workers, within: 5)?["echo"])
        let standby = try #require(workers.first { $0.id != primary.id })

        var sequence: UInt64 = 1 << 40
        var sent = 0
        let changes = try Self.underAttack(workers, for: .milliseconds(800)) {
            sequence += 1
            let datagram: [UInt8]
            switch attack {
            case "made-up primary":
                datagram = try Self.forged(
                    NodeID(high: 1, low: 2), status: .primary, priority: 1_000_000, epoch: primary.epoch + 1, sequence: sequence)
            case "real primary, higher epoch":
                datagram = try Self.forged(
                    primary.id, status: .primary, priority: primary.priority, epoch: primary.epoch + 1_000, sequence: sequence)
            default:
                datagram = try Self.forged(
                    standby.id, status: .standby, priority: 0, epoch: primary.epoch, flags: [.leaving], sequence: .max - 1)
            }
            // Dressed up as sealed: the magic, then the plain heartbeat and a made-up tag.
            let dressed = [0x53, 0x4B, 1] + datagram + [UInt8](repeating: 0xA5, count: 16)
            for worker in workers { try RawSocket.sendUDP([datagram, dressed], to: worker.address.port) }
            sent += 1
        }
        #expect(changes.isEmpty, "records changed under attack: \(changes.prefix(2))")
        let wrong = try await Self.submitJobs(workers, count: 30, tag: "forged")
        #expect(wrong.isEmpty, "jobs not answered: \(wrong.prefix(3))")
        for worker in workers {
            let report = try #require(worker.status())
            #expect(report.rejected["heartbeat_unsealed", default: 0] >= UInt64(sent), "\(report.rejected)")
            #expect(report.rejected["heartbeat_unopened", default: 0] >= UInt64(sent), "\(report.rejected)")
            #expect(report.primaries(of: "echo").map(\.id) == [primary.id])
        }
        print("\(attack): \(sent) rounds to \(workers.count) keyed workers; no record changed; rejected \(workers[0].status()?.rejected.sorted { $0.key < $1.key } ?? [])")
    }

    /// Heartbeats captured on `lo` are replayed after their sender was killed, from another
    /// address and from its own; a new worker that never knew it is sent them too.
    @Test("heartbeats captured on the wire and replayed after their sender died bring nothing back")
    func replayAfterDeath() async throws {
        let capture: RawUDPCapture
        switch RawUDPCapture.open() {
        case .success(let opened): capture = opened
        case .failure(let unavailable):
            print("skipped: capturing heartbeats needs a raw socket (run as root): \(unavailable.reason)")
            return
        }
        let key = try SecretFiles.newClusterKey()
        let workers = try Self.keyedCluster(keyFile: key.path)
        defer { workers.forEach { $0.kill() } }
        let primary = try #require(awaitAgreement(workers, within: 5)?["echo"])
        let victim = try #require(workers.first { $0.id == primary.id })
        var survivors = workers.filter { $0 !== victim }
        let ports = Set(workers.map(\.address.port))
        let captured = capture.capture(toPorts: ports, for: .milliseconds(1_000))
        let fromVictim = captured.filter { $0.sourcePort == victim.address.port }.map(\.payload)
        #expect(fromVictim.count >= 10, "captured \(captured.count) datagrams, \(fromVictim.count) from the victim")
        #expect(captured.allSatisfy { $0.payload.starts(with: [0x53, 0x4B]) })

        victim.signal(SIGKILL)
        victim.kill()
        let successor = poll(within: .seconds(5)) { () -> StatusReport.Entry? in
            let views = survivors.compactMap { $0.status() }
            guard views.count == survivors.count, views.allSatisfy({ !$0.members.contains { $0.id == victim.id } }),
                  let first = views[0].primaries(of: "echo").first,
                  views.allSatisfy({ $0.primaries(of: "echo").map(\.id) == [first.id] }) else { return nil }
            return first
        }
        try #require(successor != nil)
        // A newcomer that never heard the victim: for it the victim is unknown, so it challenges.
        survivors.append(try WorkerProcess(service: "echo", join: [survivors[0].address], extra: ["--cluster-key-file", key.path]))
        try #require(awaitAgreement(survivors, within: 5) != nil)
        let before = survivors.map { $0.status()?.rejected ?? [:] }

        var resurrections: [String] = []
        func watch() {
            for survivor in survivors where survivor.status()?.members.contains(where: { $0.id == victim.id }) ?? false {
                resurrections.append("\(survivor.id.short) lists the dead \(victim.id.short)")
            }
        }
        // Every captured datagram, to every survivor, from a fresh port.
        for survivor in survivors {
            try RawSocket.sendUDP(captured.map(\.payload), to: survivor.address.port)
            watch()
        }
        // Then the victim's own, from the victim's own address, where the challenges come back.
        let impostor = try BoundUDPSocket(port: victim.address.port)
        var challengesSeen = 0
        _ = poll(within: .milliseconds(1_000), every: .milliseconds(20)) { () -> Bool? in
            for survivor in survivors { for datagram in fromVictim { impostor.send(datagram, to: survivor.address.port) } }
            challengesSeen += impostor.receive(for: .milliseconds(30)).filter { $0.starts(with: [0x53, 0x4B]) }.count
            watch()
            return nil
        }
        #expect(resurrections.isEmpty, "\(resurrections.prefix(3))")
        let wrong = try await Self.submitJobs(survivors, count: 20, tag: "replay")
        #expect(wrong.isEmpty, "jobs not answered: \(wrong.prefix(3))")

        let after = survivors.map { $0.status()?.rejected ?? [:] }
        func grew(_ reason: String, _ index: Int) -> UInt64 { after[index][reason, default: 0] - before[index][reason, default: 0] }
        for index in survivors.indices.dropLast() {
            #expect(grew("heartbeat_replayed", index) + grew("heartbeat_misaddressed", index) >= UInt64(fromVictim.count),
                    "\(after[index])")
        }
        let newcomer = survivors.count - 1
        #expect(grew("heartbeat_challenged", newcomer) >= 1, "\(after[newcomer])")
        #expect(challengesSeen >= 1, "the challenges went to the victim's address")
        print("replayed \(captured.count) captured datagrams (\(fromVictim.count) of the dead primary) to \(survivors.count) survivors, "
              + "then the dead one's from its own port: no record lists it; \(challengesSeen) sealed challenges reached its port; "
              + "rejected: \(survivors.indices.map { index in ["heartbeat_replayed", "heartbeat_misaddressed", "heartbeat_challenged", "heartbeat_unverified"].map { "\($0)+\(grew($0, index))" }.joined(separator: " ") })")
    }

    @Test("a worker with another key, and one with none, are not admitted to a keyed cluster")
    func strangersNotAdmitted() throws {
        let key = try SecretFiles.newClusterKey()
        let other = try SecretFiles.newClusterKey()
        let keyed = try Self.keyedCluster(count: 2, keyFile: key.path)
        defer { keyed.forEach { $0.kill() } }
        try #require(awaitAgreement(keyed, within: 5) != nil)
        let keyless = try WorkerProcess(service: "echo", join: [keyed[0].address])
        defer { keyless.kill() }
        // It also names the keyless one as a seed, so that one receives sealed heartbeats.
        let wrongKey = try WorkerProcess(
            service: "echo", join: [keyed[0].address, keyless.address], extra: ["--cluster-key-file", other.path])
        defer { wrongKey.kill() }
        let keyedIDs = Set(keyed.map(\.id)), strangerIDs: Set = [wrongKey.id, keyless.id]
        var admitted: [String] = []
        // Past the discovery window: both strangers admit themselves alone.
        _ = poll(within: .milliseconds(1_500), every: .milliseconds(20)) { () -> Bool? in
            for worker in keyed where !(worker.status()?.members.filter { strangerIDs.contains($0.id) }.isEmpty ?? true) {
                admitted.append("keyed \(worker.id.short) lists a stranger")
            }
            for worker in [wrongKey, keyless] where !(worker.status()?.members.filter { keyedIDs.contains($0.id) }.isEmpty ?? true) {
                admitted.append("stranger \(worker.id.short) lists a keyed worker")
            }
            if wrongKey.status()?.members.contains(where: { $0.id == keyless.id }) ?? false {
                admitted.append("the wrong-key worker lists the keyless one")
            }
            return nil
        }
        #expect(admitted.isEmpty, "\(admitted.prefix(3))")
        let keyedRejected = try #require(keyed[0].status()?.rejected)
        #expect(keyedRejected["heartbeat_unopened", default: 0] >= 1, "\(keyedRejected)")
        #expect(keyedRejected["heartbeat_unsealed", default: 0] >= 1, "\(keyedRejected)")
        #expect(keyless.status()?.rejected["heartbeat_sealed_without_key", default: 0] ?? 0 >= 1)
        #expect(keyless.log.contains("this process has no cluster key"))
        #expect(wrongKey.status()?.selfStatus == .primary && keyless.status()?.selfStatus == .primary)
        print("strangers kept out: keyed rejected \(keyedRejected.sorted { $0.key < $1.key }); keyless rejected \(keyless.status()?.rejected ?? [:])")
    }

    /// The cost of sealing in time: admission of a cluster and failover after kill -9, keyed and
    /// not, in the same run.
    @Test("join and failover with keys take at most one extra round trip", arguments: [false, true])
    func timings(keyed: Bool) throws {
        let key = try SecretFiles.newClusterKey()
        let extra = keyed ? ["--cluster-key-file", key.path] : []
        let seed = try WorkerProcess(service: "echo", extra: extra)
        defer { seed.kill() }
        // Join: from the moment the joiner is listening to both records holding both, admitted.
        let joiner = try WorkerProcess(service: "echo", join: [seed.address], extra: extra)
        defer { joiner.kill() }
        let joinStart = ContinuousClock.now
        let heard = poll(within: .seconds(5), every: .milliseconds(1)) { () -> Bool? in
            guard let a = seed.status(), let b = joiner.status(),
                  a.members.contains(where: { $0.id == joiner.id }), b.members.contains(where: { $0.id == seed.id }) else { return nil }
            return true
        }
        let joinMs = (ContinuousClock.now - joinStart).milliseconds
        try #require(heard == true)
        let third = try WorkerProcess(service: "echo", join: [seed.address], extra: extra)
        defer { third.kill() }
        let all = [seed, joiner, third]
        let old = try #require(awaitAgreement(all, within: 5)?["echo"])
        let (_, successor, failover) = try killPrimaryAndAwaitSuccessor(old, of: "echo", among: all)
        let failoverMs = failover.milliseconds
        try #require(successor != nil)
        print("\(keyed ? "keyed" : "open"): both records hold each other \(joinMs) ms after the joiner listened; "
              + "failover after kill -9 of the primary \(failoverMs) ms (target 3 intervals + 100 ms = 400 ms)")
        #expect(failoverMs < 2_000)
    }
}

