import Foundation
import StarlingClient
import StarlingCore

#if canImport(Glibc)
import Glibc
#endif

/// The scenarios against Starling: W `starling worker` processes (or, for `scale`, one
/// `starling up` agent that starts and scales its own), driven through `StarlingClient`.
enum StarlingSystem {
    static func run(_ plan: ScenarioPlan, options: CommonOptions,
                    started: (String) -> Void) async throws -> SystemRun {
        let binary = try Cluster.findBinary()
        if let scale = plan.scale {
            return try await runScale(plan, scale: scale, options: options, binary: binary, started: started)
        }
        if let spread = plan.spread {
            return try await runSpread(plan, spread: spread, options: options, binary: binary, started: started)
        }
        // Instant jobs: capacity never limits the dispatch being measured.
        let definition = """
            # written by starling-bench
            handler = "echo"
            concurrency = 1024
            timeout_ms = 10000

            """
        let cluster = try Cluster.start(binary: binary, service: "echo", definition: definition,
                                        count: options.workers, intervalMs: options.interval,
                                        clusterKey: options.clusterKey)
        started(cluster.directory)
        let agreement = try await cluster.waitForAgreement()
        let entries = cluster.workers.count == 1 ? cluster.workers
            : cluster.workers.filter { $0.id != agreement.primary.id }
        writeStderr("starling-bench: \(cluster.workers.count) workers agreed in \(agreement.waitedMs) ms "
            + "(primary \(agreement.primary.address), epoch \(agreement.epoch)); \(plan.concurrency) jobs outstanding "
            + "over \(entries.count) entry node(s) for \(options.warmup) + \(options.duration) s\n")

        let settings = ScenarioRunner.settings(plan, options: options)
        if options.client == .raw {
            let ports = entries.compactMap { $0.address.split(separator: ":").last.flatMap { UInt16($0) } }
            let start = monotonicNs()
            let result = await ScenarioRunner.load(settings, start: start) { counters in
                await BlockingLoad.run(ports: ports, connections: entries.count, settings: settings, counters: counters,
                                       serverName: "the entry node", start: start) { StarlingWire(service: "echo") }
            }
            return SystemRun(result: result, entryNodes: entries.count, agreementMs: agreement.waitedMs,
                             directory: cluster.directory)
        }

        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = max(configuration.maxInFlight, plan.concurrency)
        configuration.requestTimeoutMs = UInt64(options.lostAfterMs)
        // Under failure, each client knows every worker (its own entry node first), as a real
        // client would, so that it can fail over when its entry node dies.
        let clients = try entries.map { entry in
            let nodes = plan.failure == nil ? [entry.address]
                : [entry.address] + cluster.workers.map(\.address).filter { $0 != entry.address }
            return try StarlingClient(nodes: nodes, configuration: configuration)
        }
        for client in clients { try await client.ping() }

        let start = monotonicNs()
        async let kills = killer(plan.failure, cluster: cluster, primary: agreement.primary, start: start)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await LoadRun.run(clients: clients, settings: settings, counters: counters, start: start)
        }
        let events = await kills
        for client in clients { await client.close() }
        return SystemRun(result: result, entryNodes: entries.count, agreementMs: agreement.waitedMs, kills: events,
                         directory: cluster.directory)
    }

    /// kill -9 of the primary at the first time; with `workers`, of a standby at the second.
    private static func killer(_ plan: FailurePlan?, cluster: Cluster, primary: StartedWorker,
                               start: UInt64) async -> [KillEvent] {
        guard let plan else { return [] }
        var events: [KillEvent] = []
        await sleep(until: start + UInt64(plan.firstAtS * 1e9))
        Spawn.killNow(primary.pid)
        events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of the primary \(primary.address)"))
        writeStderr("\nstarling-bench: killed the primary \(primary.address) (pid \(primary.pid))\n")
        guard plan.kind == .workers else { return events }
        await sleep(until: start + UInt64(plan.secondAtS * 1e9))
        let survivors = cluster.workers.filter { $0.pid != primary.pid }
        let victim = await currentStandby(among: survivors) ?? survivors.last!
        Spawn.killNow(victim.pid)
        events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of a standby \(victim.address)"))
        writeStderr("\nstarling-bench: killed a standby \(victim.address) (pid \(victim.pid))\n")
        return events
    }

    /// A worker that some survivor's record shows as a standby (not the new primary).
    private static func currentStandby(among workers: [StartedWorker]) async -> StartedWorker? {
        var configuration = StarlingClient.Configuration()
        configuration.requestTimeoutMs = 500
        configuration.maxConnectAttempts = 1
        for worker in workers {
            guard let client = try? StarlingClient(nodes: [worker.address], configuration: configuration) else { continue }
            let json = try? await client.status()
            await client.close()
            guard let json, let report = try? StatusReport(json: json) else { continue }
            let standbys = Set(report.members.filter { $0.status == .standby }.map(\.id))
            if let victim = workers.last(where: { standbys.contains($0.id) }) { return victim }
        }
        return nil
    }

    // MARK: - Scale

    private static func runScale(_ plan: ScenarioPlan, scale: ScalePlan, options: CommonOptions, binary: String,
                                 started: (String) -> Void) async throws -> SystemRun {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory + "/jobs", withIntermediateDirectories: true)
        started(directory)
        let definition = """
            # written by starling-bench: a sleep job per payload, scaled between 1 and \(scale.maxWorkers) workers
            service = "sleep"
            handler = "sleep"
            concurrency = \(scale.workerConcurrency)
            timeout_ms = 60000
            min_workers = 1
            max_workers = \(scale.maxWorkers)
            scale_up_backlog = \(scale.workerConcurrency)
            scale_down_idle_ms = 600000

            """
        try Data(definition.utf8).write(to: URL(fileURLWithPath: directory + "/jobs/sleep.toml"))
        let agent = try Cluster.spawnWorker(
            binary: binary,
            arguments: ["up", directory + "/jobs", "--port", "0", "--host", "127.0.0.1", "--interval", "\(options.interval)",
                        "--max-workers", "\(scale.maxWorkers)"],
            logPath: directory + "/agent.log", startTimeoutMs: 15_000, kind: "agent")
        // The agent leads its own process group, in which it starts its workers.
        Children.shared.addGroup(agent.pid)

        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = max(configuration.maxInFlight, plan.concurrency)
        configuration.requestTimeoutMs = UInt64(options.lostAfterMs)
        let client = try StarlingClient(nodes: [agent.address], configuration: configuration)
        // Wait for the first worker (min_workers = 1) to be admitted.
        let deadline = monotonicNs() + 20_000_000_000
        while await workers(of: "sleep", at: client) < 1 {
            guard monotonicNs() < deadline else {
                await client.close()
                throw BenchError("the agent started no sleep worker within 20 s; its log:\n"
                    + Spawn.logTail(directory + "/agent.log"))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        writeStderr("starling-bench: agent \(agent.address) up with 1 sleep worker; C \(scale.from) → \(scale.to) at "
            + String(format: "%.1f s", scale.stepAtS) + "\n")

        let settings = ScenarioRunner.settings(plan, options: options)
        let start = monotonicNs()
        let endNs = start + UInt64((options.warmup + options.duration) * 1e9)
        async let counts: [[Double]] = poll(client: client, start: start, until: endNs)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await LoadRun.run(clients: [client], settings: settings, counters: counters, start: start)
        }
        let workersOverTime = await counts
        await client.close()
        return SystemRun(result: result, entryNodes: 1, workersOverTime: workersOverTime, directory: directory)
    }

    /// Workers of `service` (primary or standby) in the record of the node behind `client`.
    private static func workers(of service: String, at client: StarlingClient) async -> Int {
        guard let json = try? await client.status(), let report = try? StatusReport(json: json) else { return -1 }
        return report.members.filter {
            $0.service.value == service && ($0.status == .primary || $0.status == .standby)
        }.count
    }

    /// (seconds since `start`, sleep workers) every 200 ms until `until`.
    private static func poll(client: StarlingClient, start: UInt64, until: UInt64) async -> [[Double]] {
        var samples: [[Double]] = []
        while monotonicNs() < until {
            let count = await workers(of: "sleep", at: client)
            if count >= 0 { samples.append([seconds(since: start), Double(count)]) }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return samples
    }
}

/// Sleeps until the monotonic clock reads `ns`.
func sleep(until ns: UInt64) async {
    let now = monotonicNs()
    if ns > now { try? await Task.sleep(for: .nanoseconds(ns - now)) }
}

/// Seconds since `start` on the monotonic clock, to the millisecond.
func seconds(since start: UInt64) -> Double {
    (Double(monotonicNs() - start) / 1e6).rounded() / 1_000
}
