import ArgumentParser
import Foundation
import StarlingClient

#if canImport(Glibc)
import Glibc
#endif

/// `starling-bench`: benchmarks of a real Starling cluster, of gearmand and of nats-server on this
/// machine (benchmarks/README.md).
@main
struct StarlingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling-bench",
        abstract: "Benchmarks of real starling workers (or gearmand, or nats-server, and their workers) on loopback.",
        subcommands: [Echo.self, Latency.self, Failure.self, Scale.self, Spread.self, Members.self, Summarize.self, GearmanWorker.self,
                      NATSWorker.self])
}

/// The system a scenario runs against.
enum SystemUnderTest: String, ExpressibleByArgument, CaseIterable, Sendable {
    case starling
    case gearmand
    /// nats-server with workers in a queue group, requests answered to a reply inbox.
    case nats
}

/// How the bench talks to Starling.
enum StarlingClientKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// `StarlingClient`, the library applications use (async/await, failover).
    case library
    /// The protocol straight on blocking sockets, like the bench's gearman client (no failover).
    case raw
}

/// Options shared by every benchmark.
struct CommonOptions: ParsableArguments {
    @Option(help: "starling, gearmand or nats.")
    var system: SystemUnderTest = .starling

    @Option(help: "Workers to start (starling: the first is the seed, the others join it; gearmand, nats: worker processes).")
    var workers = 4

    @Option(help: "Seconds measured, after the warm-up.")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring (discarded).")
    var warmup = 2.0

    @Option(name: .customLong("payload-bytes"), help: "Bytes of each job's payload.")
    var payloadBytes = 64

    @Option(help: "Heartbeat interval of the starling workers, in milliseconds.")
    var interval = 100

    @Option(help: "starling only: library (StarlingClient) or raw (the protocol on blocking sockets, echo and latency only).")
    var client: StarlingClientKind = .library

    @Option(name: .customLong("gearmand-threads"), help: "gearmand's I/O threads (its --threads).")
    var gearmandThreads = 4

    @Option(name: .customLong("lost-after-ms"), help: "A job with no answer after this long counts as lost.")
    var lostAfterMs = 10_000

    @Option(help: "Also write the report as JSON to this path.")
    var json: String?

    @Flag(name: .customLong("cluster-key"), help: "starling only: close the cluster with a fresh key (sealed heartbeats and peer links).")
    var clusterKey = false

    @Flag(name: .customLong("keep-logs"), help: "Keep the processes' logs (and jobs folder) and print where.")
    var keepLogs = false

    /// The system's name in reports: `starling`, `starling-raw` or `gearmand`, with `-keyed` for a
    /// closed cluster.
    var systemName: String {
        guard system == .starling else { return system.rawValue }
        return "starling" + (client == .raw ? "-raw" : "") + (clusterKey ? "-keyed" : "")
    }

    func validate(concurrency: Int, rawAllowed: Bool = false) throws {
        if client == .raw {
            guard system == .starling else { throw ValidationError("--client applies to --system starling only") }
            guard rawAllowed else { throw ValidationError("--client raw is for echo and latency only (it has no failover)") }
        }
        if clusterKey, system != .starling { throw ValidationError("--cluster-key applies to --system starling only") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64") }
        guard (1...100_000).contains(concurrency) else { throw ValidationError("--concurrency must be 1...100000") }
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be > 0 s (at most a day)") }
        guard warmup >= 0, warmup <= 3_600 else { throw ValidationError("--warmup must be 0...3600 s") }
        guard (0...(1 << 20)).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be 0...1048576") }
        guard (10...10_000).contains(interval) else { throw ValidationError("--interval must be 10...10000 ms") }
        guard (1...64).contains(gearmandThreads) else { throw ValidationError("--gearmand-threads must be 1...64") }
        guard (100...600_000).contains(lostAfterMs) else { throw ValidationError("--lost-after-ms must be 100...600000") }
        if let json {
            let folder = URL(fileURLWithPath: json).deletingLastPathComponent().path
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw ValidationError("--json: folder \(folder) does not exist")
            }
        }
    }
}

extension StarlingBench {
    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Throughput and latency of echo jobs with C jobs always outstanding.",
            discussion: """
                starling: starts W workers of service 'echo' on 127.0.0.1, waits until they agree \
                on a primary, then keeps C jobs outstanding across the standbys as entry nodes. \
                gearmand (nats): starts gearmand (nats-server) on a free loopback port and W gearman \
                (NATS) worker processes, then keeps C jobs outstanding over W - 1 client \
                connections. Each job is measured from submit to answer.
                """)

        @OptionGroup var options: CommonOptions

        @Option(help: "Jobs kept outstanding at all times, spread over the entry nodes.")
        var concurrency = 64

        func validate() throws { try options.validate(concurrency: concurrency, rawAllowed: true) }

        func run() async throws {
            try await ScenarioRunner.run(ScenarioPlan(name: "echo", concurrency: concurrency), options: options)
        }
    }

    struct Latency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The round-trip floor: echo with one job outstanding at a time.")

        @OptionGroup var options: CommonOptions

        func validate() throws { try options.validate(concurrency: 1, rawAllowed: true) }

        func run() async throws {
            try await ScenarioRunner.run(ScenarioPlan(name: "latency", concurrency: 1), options: options)
        }
    }

    struct Failure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Echo load while processes are killed with -9: jobs/s over time, longest gap, lost, duplicated.",
            discussion: """
                --kill workers: starling loses its primary at the first kill and a standby at the \
                second; gearmand and nats lose a worker, then another. --kill server: starling loses \
                its primary; gearmand (nats-server) itself is killed (its single point of failure) \
                and started again on the same port --restart-after-ms later, as a supervisor would \
                (0: never).
                """)

        @OptionGroup var options: CommonOptions

        @Option(help: "Jobs kept outstanding at all times.")
        var concurrency = 64

        @Option(help: "workers or server.")
        var kill: FailureKind = .workers

        @Option(name: .customLong("first-kill-at"), help: "Seconds into the measured window of the first kill.")
        var firstKillAt = 3.0

        @Option(name: .customLong("second-kill-at"), help: "Seconds into the measured window of the second kill (--kill workers).")
        var secondKillAt = 6.5

        @Option(name: .customLong("restart-after-ms"), help: "gearmand or nats-server (--kill server) is started again this long after its kill; 0: never.")
        var restartAfterMs = 1_000

        func validate() throws {
            try options.validate(concurrency: concurrency)
            guard options.workers >= 3 else { throw ValidationError("--workers must be at least 3 for the failure scenario") }
            guard firstKillAt > 0, firstKillAt < options.duration else {
                throw ValidationError("--first-kill-at must be inside the measured window (0, --duration)")
            }
            guard secondKillAt > firstKillAt, secondKillAt < options.duration else {
                throw ValidationError("--second-kill-at must be after --first-kill-at and before --duration")
            }
            guard (0...600_000).contains(restartAfterMs) else { throw ValidationError("--restart-after-ms must be 0...600000") }
        }

        func run() async throws {
            let plan = FailurePlan(kind: kill, firstAtS: options.warmup + firstKillAt,
                                   secondAtS: options.warmup + secondKillAt, restartAfterMs: restartAfterMs)
            try await ScenarioRunner.run(
                ScenarioPlan(name: "failure-\(kill.rawValue)", concurrency: concurrency, failure: plan), options: options)
        }
    }

    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A step in load (C from --from to --to) of sleep jobs: how long until added workers carry it.",
            discussion: """
                starling: one host agent (`starling up`) scales service 'sleep' between 1 and \
                --max-workers workers of --worker-concurrency slots each. gearmand has no autoscaler: \
                one worker process with --worker-concurrency connections, as many slots as \
                starling's minimum, carries the whole run. --workers is not used.
                """)

        @OptionGroup var options: CommonOptions

        @Option(help: "Jobs outstanding before the step.")
        var from = 4

        @Option(help: "Jobs outstanding after the step.")
        var to = 64

        @Option(name: .customLong("step-at"), help: "Seconds into the measured window of the step.")
        var stepAt = 3.0

        @Option(name: .customLong("sleep-ms"), help: "Milliseconds each job sleeps.")
        var sleepMs = 10

        @Option(name: .customLong("worker-concurrency"), help: "Jobs one worker runs at once.")
        var workerConcurrency = 4

        @Option(name: .customLong("max-workers"), help: "The most workers the scaler may run (min is 1).")
        var maxWorkers = 4

        func validate() throws {
            try options.validate(concurrency: to)
            guard options.system != .nats else {
                throw ValidationError("scale is not measured for nats: it has no autoscaler and no sleep worker")
            }
            guard from >= 1, from < to else { throw ValidationError("--from must be 1 or more and below --to") }
            guard stepAt > 0, stepAt < options.duration else { throw ValidationError("--step-at must be inside (0, --duration)") }
            guard (1...10_000).contains(sleepMs) else { throw ValidationError("--sleep-ms must be 1...10000") }
            guard (1...1_024).contains(workerConcurrency) else { throw ValidationError("--worker-concurrency must be 1...1024") }
            guard (2...64).contains(maxWorkers) else { throw ValidationError("--max-workers must be 2...64") }
        }

        func run() async throws {
            let plan = ScalePlan(from: from, to: to, stepAtS: options.warmup + stepAt, sleepMs: sleepMs,
                                 workerConcurrency: workerConcurrency, maxWorkers: maxWorkers)
            try await ScenarioRunner.run(ScenarioPlan(name: "scale", concurrency: to, scale: plan), options: options)
        }
    }
}

extension StarlingBench {
    struct Spread: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Starling only: sleep jobs entering at one standby (or at every worker): how they spread over the executors.",
            discussion: """
                Starts W workers of service 'sleep' (--worker-concurrency slots each, --http on), waits \
                until they agree on a primary, then keeps C sleep jobs outstanding over --connections \
                StarlingClients: with --load uneven all of them at the same standby, which cannot run \
                them all, so the primary places the rest by load; with --load even spread over every \
                worker. Reads starling_jobs_run_total from every worker's /metrics at the start and at \
                the end of the measured window, and reports each worker's share of the jobs run and the \
                spread over the executors (coefficient of variation). Measured, not asserted.
                """)

        @OptionGroup var options: CommonOptions

        @Option(help: "uneven (every connection at one standby) or even (the connections over every worker).")
        var load: SpreadLoad = .uneven

        @Option(help: "Jobs kept outstanding at all times (by default a few more than the standbys' slots).")
        var concurrency = 8

        @Option(name: .customLong("sleep-ms"), help: "Milliseconds each job sleeps.")
        var sleepMs = 5

        @Option(name: .customLong("worker-concurrency"), help: "Jobs one worker runs at once.")
        var workerConcurrency = 2

        @Option(help: "Client connections (default: W, the number of workers).")
        var connections: Int?

        func validate() throws {
            try options.validate(concurrency: concurrency)
            guard options.system == .starling else { throw ValidationError("spread is measured for --system starling only") }
            guard options.workers >= 2 else { throw ValidationError("--workers must be at least 2 for spread (a primary and a standby)") }
            guard (1...10_000).contains(sleepMs) else { throw ValidationError("--sleep-ms must be 1...10000") }
            guard (1...1_024).contains(workerConcurrency) else { throw ValidationError("--worker-concurrency must be 1...1024") }
            if let connections, !(1...64).contains(connections) { throw ValidationError("--connections must be 1...64") }
        }

        func run() async throws {
            let plan = SpreadPlan(load: load, sleepMs: sleepMs, workerConcurrency: workerConcurrency,
                                  connections: connections ?? options.workers)
            try await ScenarioRunner.run(
                ScenarioPlan(name: "spread-\(load.rawValue)", concurrency: concurrency, spread: plan), options: options)
        }
    }
}

enum FailureKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    case workers
    case server
}
