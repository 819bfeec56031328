import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The scenarios against gearmand: the server on a free loopback port, W gearman worker
/// processes, and the closed-loop load over W - 1 client connections (as many as Starling's
/// entry nodes).
enum GearmandSystem {
    static func run(_ plan: ScenarioPlan, options: CommonOptions,
                    started: (String) -> Void) async throws -> SystemRun {
        let workers = plan.scale == nil ? options.workers : 1
        let cluster = try GearmandCluster(
            workers: workers, function: plan.scale == nil ? .echo : .sleep,
            connectionsPerWorker: plan.scale?.workerConcurrency ?? 1, threads: options.gearmandThreads)
        started(cluster.directory)
        let connections = max(1, options.workers - 1)
        writeStderr("starling-bench: gearmand on 127.0.0.1:\(cluster.port) (\(options.gearmandThreads) threads), "
            + "\(workers) worker process(es); \(plan.concurrency) jobs outstanding over \(connections) connection(s) "
            + "for \(options.warmup) + \(options.duration) s\n")
        let settings = ScenarioRunner.settings(plan, options: options)
        let start = monotonicNs()
        let port = cluster.port
        async let kills = killer(plan.failure, cluster: cluster, start: start)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await BlockingLoad.run(ports: [port], connections: connections, settings: settings, counters: counters,
                                   serverName: "gearmand", start: start) {
                GearmanWire(function: settings.sleepMs == nil ? "echo" : "sleep")
            }
        }
        let events = await kills
        let end = options.warmup + options.duration
        return SystemRun(result: result, entryNodes: connections, kills: events,
                         workersOverTime: plan.scale == nil ? [] : [[0, 1], [end, 1]], directory: cluster.directory)
    }

    /// `workers`: kill -9 of a worker, then of another. `server`: kill -9 of gearmand, started
    /// again on the same port after `restartAfterMs` (if not 0).
    private static func killer(_ plan: FailurePlan?, cluster: GearmandCluster, start: UInt64) async -> [KillEvent] {
        guard let plan else { return [] }
        var events: [KillEvent] = []
        await sleep(until: start + UInt64(plan.firstAtS * 1e9))
        switch plan.kind {
        case .workers:
            cluster.killWorker(0)
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of gearman worker 1"))
            writeStderr("\nstarling-bench: killed gearman worker 1\n")
            await sleep(until: start + UInt64(plan.secondAtS * 1e9))
            cluster.killWorker(1)
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of gearman worker 2"))
            writeStderr("\nstarling-bench: killed gearman worker 2\n")
        case .server:
            cluster.killServer()
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of gearmand"))
            writeStderr("\nstarling-bench: killed gearmand\n")
            guard plan.restartAfterMs > 0 else { break }
            try? await Task.sleep(for: .milliseconds(plan.restartAfterMs))
            do {
                try cluster.restartServer()
                events.append(KillEvent(atS: seconds(since: start), what: "gearmand started again (same port)"))
                writeStderr("\nstarling-bench: started gearmand again\n")
            } catch {
                writeStderr("\nstarling-bench: could not start gearmand again: \(error)\n")
            }
        }
        return events
    }
}
