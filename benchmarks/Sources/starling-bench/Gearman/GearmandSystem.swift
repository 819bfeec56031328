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
        let cluster = try GearmandCluster.start(
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
        async let kills = cluster.killer(plan.failure, start: start)
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
}
