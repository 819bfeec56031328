import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Rotating the cluster key under load, as docs/SECURITY.md tells operators to: rewrite the key
/// files and SIGHUP, step by step, with jobs flowing all the while.
@Suite(.serialized) struct KeyRotationTests {
    @Test("key A → \"B, A\" → \"B\" by rewriting the file and SIGHUP, under load: no job lost, no primary change")
    func rotationUnderLoadLosesNothing() async throws {
        let keyA = ClusterKeys.generateLine(), keyB = ClusterKeys.generateLine()
        let keyFile = try SecretFiles.write([keyA])
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: "handler = \"echo\"\nconcurrency = 8\n")
        let keyed = ["--jobs", jobs, "--cluster-key-file", keyFile]
        let seed = try WorkerProcess(service: "echo", extra: keyed)
        var workers = [seed]
        for _ in 0..<2 { workers.append(try WorkerProcess(service: "echo", join: [seed.address], extra: keyed)) }
        defer { workers.forEach { $0.kill() } }
        let before = try #require(awaitAgreement(workers, within: 10)?["echo"], "the keyed workers never agreed")
        let entries = workers.filter { $0.id != before.id }

        let stop = Counter()  // 1: stop submitting
        let answered = Counter()
        let clients = try entries.map { try StarlingClient(nodes: [$0.address.description], configuration: .init()) }
        // Four pipelined submitters, each its own sequence of keys, until told to stop.
        let load = Task {
            try await withThrowingTaskGroup(of: [String].self) { group in
                for lane in 0..<4 {
                    // On the client's own loop thread: the lanes then keep going while the suite's
                    // blocking process tests hold Swift's few cooperative threads.
                    group.addTask(executorPreference: clients[lane % clients.count].executor) {
                        var wrong: [String] = []
                        var n = 0
                        while stop.value.load(ordering: .relaxed) == 0 {
                            let payload = Array("lane-\(lane)-job-\(n)".utf8)
                            let answer = try await clients[lane % clients.count].submit(
                                service: "echo", payload: payload, key: "rotation-\(lane)-\(n)")
                            if answer != .ok(payload) { wrong.append("\(lane)/\(n): \(answer)") }
                            answered.value.add(1, ordering: .relaxed)
                            n += 1
                        }
                        return wrong
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        /// Waits for `count` more answers (the load keeps flowing across the step). It awaits
        /// rather than blocks; the deadline is generous, for a loaded machine.
        func answers(_ count: Int, after step: String) async {
            let target = answered.value.load(ordering: .relaxed) + count
            let flowed = await pollAsync(within: .seconds(45)) { answered.value.load(ordering: .relaxed) >= target ? true : nil }
            #expect(flowed == true, "jobs stopped flowing after \(step): \(answered.value.load(ordering: .relaxed)) answered")
        }

        await answers(500, after: "start")
        for (step, lines) in [("\"B, A\"", [keyB, keyA]), ("\"B\"", [keyB])] {
            try SecretFiles.rewrite(keyFile, lines)
            for worker in workers { worker.signal(SIGHUP) }
            let reloaded = await pollAsync(within: .seconds(5)) {
                workers.allSatisfy { $0.log.components(separatedBy: "SIGHUP: reloaded").count - 1 >= (lines.count == 2 ? 1 : 2) }
                    ? true : nil
            }
            #expect(reloaded == true, "not every worker reloaded its keys for \(step)")
            await answers(1_000, after: step)
        }
        stop.value.store(1, ordering: .relaxed)
        let wrong = try await load.value
        for client in clients { await client.close() }

        #expect(wrong.isEmpty, "\(wrong.count) jobs answered wrongly, e.g. \(wrong.prefix(3))")
        let after = try #require(awaitAgreement(workers, within: 5)?["echo"], "the workers disagree after the rotation")
        #expect(after.id == before.id && after.epoch == before.epoch, "the primary changed: \(before.id)@\(before.epoch) → \(after.id)@\(after.epoch)")
        for worker in workers {
            #expect(worker.process.exitStatus == nil, "worker \(worker.id) exited during the rotation")
        }
        // Only B opens now: a worker holding just the old key is not admitted.
        let oldKey = try SecretFiles.write([keyA])
        defer { try? FileManager.default.removeItem(atPath: oldKey) }
        let outsider = try WorkerProcess(
            service: "echo", join: [seed.address], extra: ["--jobs", jobs, "--cluster-key-file", oldKey])
        defer { outsider.kill() }
        let admitted = await pollAsync(within: .seconds(2)) { seed.status()?.members.contains { $0.id == outsider.id } == true ? true : nil }
        #expect(admitted == nil, "a worker with the retired key was admitted")
        print("key rotation A → B, A → B: \(answered.value.load(ordering: .relaxed)) jobs answered, \(wrong.count) wrong, primary \(after.id) epoch \(after.epoch) throughout")
    }
}
