import Foundation

/// The scenarios against nats-server: the server on a free loopback port, W NATS worker
/// processes in one queue group, and the closed-loop load over W - 1 client connections (as many
/// as Starling's entry nodes and gearmand's client connections).
enum NATSSystem {
    static func run(_ plan: ScenarioPlan, options: CommonOptions, started: (String) -> Void) async throws -> SystemRun {
        precondition(plan.scale == nil, "nats has no autoscaler: the scale scenario is refused for it")
        let cluster = try NATSServerCluster.start(workers: options.workers)
        started(cluster.directory)
        let connections = max(1, options.workers - 1)
        writeStderr("starling-bench: nats-server on 127.0.0.1:\(cluster.port), \(options.workers) worker process(es) "
            + "in queue group 'workers'; \(plan.concurrency) jobs outstanding over \(connections) connection(s) "
            + "for \(options.warmup) + \(options.duration) s\n")
        let settings = ScenarioRunner.settings(plan, options: options)
        let start = monotonicNs()
        let port = cluster.port
        async let kills = cluster.killer(plan.failure, start: start)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await BlockingLoad.run(ports: [port], connections: connections, settings: settings, counters: counters,
                                   serverName: "nats-server", start: start) { NATSWire(subject: "echo") }
        }
        let events = await kills
        return SystemRun(result: result, entryNodes: connections, kills: events, directory: cluster.directory)
    }
}
