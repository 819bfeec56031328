import Foundation

/// The scenarios against nats-server: the server on a free loopback port, W NATS worker
/// processes in one queue group, and the closed-loop load over W - 1 client connections (as many
/// as Starling's entry nodes and gearmand's client connections).
enum NATSSystem {
    static func run(_ plan: ScenarioPlan, options: CommonOptions, started: (String) -> Void) async throws -> SystemRun {
        precondition(plan.scale == nil, "nats has no autoscaler: the scale scenario is refused for it")
        let cluster = try NATSServerCluster(workers: options.workers)
        started(cluster.directory)
        let connections = max(1, options.workers - 1)
        writeStderr("starling-bench: nats-server on 127.0.0.1:\(cluster.port), \(options.workers) worker process(es) "
            + "in queue group 'workers'; \(plan.concurrency) jobs outstanding over \(connections) connection(s) "
            + "for \(options.warmup) + \(options.duration) s\n")
        let settings = ScenarioRunner.settings(plan, options: options)
        let start = monotonicNs()
        let port = cluster.port
        async let kills = killer(plan.failure, cluster: cluster, start: start)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await BlockingLoad.run(ports: [port], connections: connections, settings: settings, counters: counters,
                                   serverName: "nats-server", start: start) { NATSWire(subject: "echo") }
        }
        let events = await kills
        return SystemRun(result: result, entryNodes: connections, kills: events, directory: cluster.directory)
    }

    /// `workers`: kill -9 of a worker, then of another. `server`: kill -9 of nats-server, started
    /// again on the same port after `restartAfterMs` (if not 0).
    private static func killer(_ plan: FailurePlan?, cluster: NATSServerCluster, start: UInt64) async -> [KillEvent] {
        guard let plan else { return [] }
        var events: [KillEvent] = []
        await sleep(until: start + UInt64(plan.firstAtS * 1e9))
        switch plan.kind {
        case .workers:
            cluster.killWorker(0)
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of NATS worker 1"))
            writeStderr("\nstarling-bench: killed NATS worker 1\n")
            await sleep(until: start + UInt64(plan.secondAtS * 1e9))
            cluster.killWorker(1)
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of NATS worker 2"))
            writeStderr("\nstarling-bench: killed NATS worker 2\n")
        case .server:
            cluster.killServer()
            events.append(KillEvent(atS: seconds(since: start), what: "kill -9 of nats-server"))
            writeStderr("\nstarling-bench: killed nats-server\n")
            guard plan.restartAfterMs > 0 else { break }
            try? await Task.sleep(for: .milliseconds(plan.restartAfterMs))
            do {
                try cluster.restartServer()
                events.append(KillEvent(atS: seconds(since: start), what: "nats-server started again (same port)"))
                writeStderr("\nstarling-bench: started nats-server again\n")
            } catch {
                writeStderr("\nstarling-bench: could not start nats-server again: \(error)\n")
            }
        }
        return events
    }
}
