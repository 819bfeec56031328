import Foundation
import StarlingCore
import StarlingTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One cluster size of the `members` scenario: N idle `starling worker` processes of `services`
/// service types (worker i of service i mod S), the first the seed and the others joining it;
/// wait until they converge, measure their CPU and datagrams, optionally kill a primary, and
/// stop them. Everything runs on the calling thread (see `NetworkNamespace`).
struct MembersRun {
    let binary: String
    let directory: String
    let services: [String]
    let intervalMs: Int
    let measureS: Double
    let convergeTimeoutS: Double
    let killPrimary: Bool

    func run(workers count: Int) throws -> MembersPoint {
        let started = monotonicNs()
        var pids: [pid_t] = []
        defer { Children.stop(pids, graceMs: 3_000) }
        func arguments(_ index: Int) -> [String] {
            // --parent-pid: should the bench die without stopping them (kill -9), the workers go too.
            ["worker", "--service", services[index % services.count], "--port", "0", "--host", "127.0.0.1",
             "--interval", "\(intervalMs)", "--jobs", directory, "--parent-pid", "\(getpid())"]
        }
        func logPath(_ index: Int) -> String { directory + "/worker-\(count)-\(index).log" }
        let seed = try Cluster.spawnWorker(binary: binary, arguments: arguments(0), logPath: logPath(0), startTimeoutMs: 30_000)
        pids.append(seed.pid)
        // The others all at once, then their lines: one after another, the later ones wait behind
        // workers that already keep both cores busy (minutes at 150).
        var pending: [StarlingProcess] = []
        for index in 1..<max(1, count) {
            let process: StarlingProcess
            do {
                process = try StarlingProcess(executable: binary, arguments: arguments(index) + ["--join", seed.address],
                                              logPath: logPath(index), ownProcessGroup: true)
            } catch {
                throw BenchError(error.description)
            }
            guard Children.shared.add(process.pid) else {
                Children.stop([process.pid], graceMs: 0)
                throw BenchError("stopping: \(binary) not started")
            }
            pids.append(process.pid)
            pending.append(process)
        }
        var workers = [seed]
        let startDeadline = ContinuousClock.now + .seconds(max(60, count))
        for process in pending {
            guard let line = process.waitUntilListening(as: .worker, timeout: max(.zero, startDeadline - ContinuousClock.now)) else {
                throw BenchError("worker \(process.pid) did not report its address within \(max(60, count)) s of the start "
                    + "(last line: '\(process.lastOtherLine)'); its log:\n\(Spawn.logTail(process.logPath))")
            }
            workers.append(StartedWorker(pid: process.pid, id: line.id, address: line.address.description, logPath: process.logPath))
        }
        let allStarted = monotonicNs()
        let startS = Double(allStarted - started) / 1e9
        writeStderr(String(format: "starling-bench: %d workers started in %.1f s; waiting until they converge\n", count, startS))
        let probes = workers.map { StatusProbe(port: UInt16($0.address.split(separator: ":").last!)!) }
        defer { probes.forEach { $0.close() } }

        let convergence = converge(workers, probes: probes, from: allStarted)
        writeStderr("starling-bench: " + (convergence.atS.map { String(format: "converged %.2f s after the last start", $0) }
            ?? "not converged within \(convergeTimeoutS) s") + " (\(convergence.note)); measuring for \(measureS) s\n")
        // Nothing polls them while they are measured: the figures are the idle cluster's own.
        probes.forEach { $0.close() }

        let workerPIDs = workers.map(\.pid)
        let ticksBefore = workerPIDs.map { ProcessCounters.cpuTicks($0) }
        let udpBefore = ProcessCounters.udp(of: workerPIDs[0])
        let measureStart = monotonicNs()
        usleep(useconds_t(measureS * 1e6))
        let ticksAfter = workerPIDs.map { ProcessCounters.cpuTicks($0) }
        let udpAfter = ProcessCounters.udp(of: workerPIDs[0])
        let measuredS = Double(monotonicNs() - measureStart) / 1e9
        var ticks: UInt64 = 0
        var alive = 0
        for (before, after) in zip(ticksBefore, ticksAfter) {
            guard let before, let after else { continue }
            alive += 1
            ticks += after - before
        }
        func perWorker(_ name: String) -> Double? {
            guard let before = udpBefore[name], let after = udpAfter[name], after >= before else { return nil }
            return Double(after - before) / Double(count) / measuredS
        }
        var point = MembersPoint(
            workers: count, startS: startS, convergedS: convergence.atS, convergeNote: convergence.note, measuredS: measuredS,
            cpuPercent: Double(ticks) / ProcessCounters.ticksPerSecond / measuredS * 100,
            datagramsSentPerWorkerPerS: perWorker("OutDatagrams"), datagramsReceivedPerWorkerPerS: perWorker("InDatagrams"),
            receiveBufferErrors: udpAfter["RcvbufErrors"].flatMap { after in udpBefore["RcvbufErrors"].map { after &- $0 } },
            alive: alive)
        if killPrimary, convergence.atS != nil, let record = convergence.record {
            point.primaryKill = self.killPrimary(workers, probes: probes, record: record)
        }
        return point
    }

    // MARK: - Convergence

    private struct Convergence {
        var atS: Double?
        var note: String
        /// A converged record (worker 0's), to find a primary in.
        var record: StatusReport?
    }

    /// Polls STATUS until every worker's record holds all N (none joining) with exactly one
    /// primary per service and all records name the same primaries, then confirms it with one
    /// more pass over every worker. A worker once seen converged is not asked again until that
    /// pass, which keeps the polling's own load on the workers small.
    private func converge(_ workers: [StartedWorker], probes: [StatusProbe], from start: UInt64) -> Convergence {
        let ids = Set(workers.map(\.id))
        let deadline = start + UInt64(convergeTimeoutS * 1e9)
        var done = Array(repeating: false, count: workers.count)
        var lastAt: UInt64 = 0
        func check(_ index: Int) -> (ok: Bool, primaries: Set<NodeID>, record: StatusReport?) {
            // At 150 an overloaded worker took over 5 s to answer on this machine: a short timeout
            // would report "no answer" where the record is merely late.
            guard let report = probes[index].status(timeoutMs: 5_000) else { return (false, [], nil) }
            let primaries = report.members.filter { $0.status == .primary }
            let ok = report.members.count == ids.count && Set(report.members.map(\.id)) == ids
                && report.members.allSatisfy { $0.status == .primary || $0.status == .standby }
                && primaries.count == services.count && Set(primaries.map(\.service.value)).count == services.count
            return (ok, Set(primaries.map(\.id)), report)
        }
        while monotonicNs() < deadline {
            for index in workers.indices where !done[index] {
                guard check(index).ok else { break }
                done[index] = true
                lastAt = monotonicNs()
            }
            if done.allSatisfy({ $0 }) {
                // The confirming pass: every record at once, and the same primaries in all.
                var primaries: Set<NodeID> = []
                var first: StatusReport?
                for index in workers.indices {
                    let result = check(index)
                    if !result.ok { done[index] = false }
                    primaries.formUnion(result.primaries)
                    if index == 0 { first = result.record }
                }
                if done.allSatisfy({ $0 }) && primaries.count == services.count {
                    return Convergence(atS: Double(lastAt - start) / 1e9,
                                       note: "all \(workers.count) records hold all \(workers.count)", record: first)
                }
                if primaries.count != services.count { done = done.map { _ in false } }
            }
            usleep(200_000)
        }
        // Where they stand: up to ten records spread over the workers (all of them could take minutes).
        let holding = done.filter { $0 }.count
        let sample = Array(Set(stride(from: 0, to: workers.count, by: max(1, workers.count / 10)).map { $0 })).sorted()
        let sizes = sample.compactMap { probes[$0].status(timeoutMs: 3_000)?.members.count }
        let read = sizes.isEmpty ? "none of \(sample.count) sampled workers answered STATUS within 3 s"
            : "\(sizes.count) of \(sample.count) sampled records held \(sizes.min()!)–\(sizes.max()!) members"
        return Convergence(atS: nil, note: "not converged: \(holding) of \(workers.count) workers had been seen holding all "
            + "\(workers.count); at the timeout \(read)", record: nil)
    }

    // MARK: - A primary's kill

    /// kill -9 of the primary of the first service, then the time until a sample of survivors
    /// (up to three of its service, one of each other) no longer hold it, and until those of its
    /// service all name one new primary.
    private func killPrimary(_ workers: [StartedWorker], probes: [StatusProbe], record: StatusReport) -> PrimaryKill? {
        let service = services[0]
        guard let primary = record.members.first(where: { $0.service.value == service && $0.status == .primary }),
              let victim = workers.firstIndex(where: { $0.id == primary.id })
        else { return nil }
        var sample = workers.indices.filter { $0 != victim && services[$0 % services.count] == service }.prefix(3).map { $0 }
        for other in services.dropFirst() {
            if let index = workers.indices.first(where: { services[$0 % services.count] == other }) { sample.append(index) }
        }
        let timeoutMs = 10_000
        var seenDead: [Int: Int] = [:]
        var newPrimary: [Int: NodeID] = [:]
        var newPrimaryAt: Int?
        var rounds = 0
        let killedAt = monotonicNs()
        Spawn.killNow(workers[victim].pid)
        writeStderr("starling-bench: killed the \(service) primary \(workers[victim].address); watching \(sample.count) survivors\n")
        while true {
            let elapsedMs = Int((monotonicNs() - killedAt) / 1_000_000)
            guard elapsedMs < timeoutMs else { break }
            rounds += 1
            for index in sample {
                guard let report = probes[index].status(timeoutMs: 500) else { continue }
                let now = Int((monotonicNs() - killedAt) / 1_000_000)
                if seenDead[index] == nil, !report.members.contains(where: { $0.id == primary.id }) { seenDead[index] = now }
                if services[index % services.count] == service,
                   let next = report.members.first(where: { $0.service.value == service && $0.status == .primary && $0.id != primary.id }) {
                    newPrimary[index] = next.id
                }
            }
            let ofService = sample.filter { services[$0 % services.count] == service }
            if newPrimaryAt == nil, ofService.allSatisfy({ newPrimary[$0] != nil }), Set(ofService.compactMap { newPrimary[$0] }).count == 1 {
                newPrimaryAt = Int((monotonicNs() - killedAt) / 1_000_000)
            }
            if seenDead.count == sample.count && newPrimaryAt != nil { break }
            usleep(2_000)
        }
        let spentMs = Int((monotonicNs() - killedAt) / 1_000_000)
        return PrimaryKill(service: service, sampled: sample.count,
                           seenDeadMs: seenDead.count == sample.count ? seenDead.values.max() : nil,
                           newPrimaryMs: newPrimaryAt, timeoutMs: timeoutMs, pollEveryMs: max(1, spentMs / max(1, rounds)))
    }
}
