import ArgumentParser
import Foundation
import StarlingClient

#if canImport(Glibc)
import Glibc
#endif

/// `starling-bench`: benchmarks of a real Starling cluster on this machine (benchmarks/README.md).
@main
struct StarlingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling-bench",
        abstract: "Benchmarks of real starling workers on loopback.",
        subcommands: [Echo.self, Latency.self])
}

/// Options shared by every benchmark.
struct CommonOptions: ParsableArguments {
    @Option(help: "Workers to start (the first is the seed, the others join it).")
    var workers = 4

    @Option(help: "Seconds measured, after the warm-up.")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring (discarded).")
    var warmup = 2.0

    @Option(name: .customLong("payload-bytes"), help: "Bytes of each job's payload.")
    var payloadBytes = 64

    @Option(help: "Heartbeat interval of the workers, in milliseconds.")
    var interval = 100

    @Option(help: "Also write the report as JSON to this path.")
    var json: String?

    @Flag(name: .customLong("keep-logs"), help: "Keep the workers' logs (and jobs folder) and print where.")
    var keepLogs = false

    func validate(concurrency: Int) throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64") }
        guard (1...100_000).contains(concurrency) else { throw ValidationError("--concurrency must be 1...100000") }
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be > 0 s (at most a day)") }
        guard warmup >= 0, warmup <= 3_600 else { throw ValidationError("--warmup must be 0...3600 s") }
        guard (0...(1 << 20)).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be 0...1048576") }
        guard (10...10_000).contains(interval) else { throw ValidationError("--interval must be 10...10000 ms") }
    }
}

extension StarlingBench {
    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Throughput and latency of echo jobs with C jobs always outstanding.",
            discussion: """
                Starts W workers of service 'echo' on 127.0.0.1, waits until they agree on a \
                primary, then keeps C jobs outstanding across the standbys as entry nodes and \
                measures each job from submit to answer.
                """)

        @OptionGroup var options: CommonOptions

        @Option(help: "Jobs kept outstanding at all times, spread over the entry nodes.")
        var concurrency = 64

        func validate() throws { try options.validate(concurrency: concurrency) }

        func run() async throws {
            try await EchoBenchmark.run(name: "echo", options: options, concurrency: concurrency)
        }
    }

    struct Latency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The round-trip floor: echo with one job outstanding at a time.")

        @OptionGroup var options: CommonOptions

        func validate() throws { try options.validate(concurrency: 1) }

        func run() async throws {
            try await EchoBenchmark.run(name: "latency", options: options, concurrency: 1)
        }
    }
}

/// The echo benchmark from start to stop: cluster, agreement, load, report, cleanup.
enum EchoBenchmark {
    static let service = "echo"

    static func run(name: String, options: CommonOptions, concurrency: Int) async throws {
        let binary: String
        do {
            binary = try Cluster.findBinary()
        } catch {
            writeStderr("starling-bench: \(error)\n")
            throw ExitCode(2)
        }
        let signals = SignalGuard.install { number in
            writeStderr("\nstarling-bench: signal \(number): stopping the workers\n")
        }
        defer { withExtendedLifetime(signals) {} }

        var cluster: Cluster?
        do {
            let report = try await measure(name: name, options: options, concurrency: concurrency, binary: binary) {
                cluster = $0
            }
            Children.shared.stopAll()
            if let cluster {
                if options.keepLogs {
                    writeStderr("starling-bench: the workers' logs are in \(cluster.directory)\n")
                } else {
                    try? FileManager.default.removeItem(atPath: cluster.directory)
                }
            }
            print(report.table)
            if let path = options.json {
                try report.writeJSON(to: path)
                print("JSON written to \(path)")
            }
            if report.errorsTotal > 0 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Children.shared.stopAll()
            writeStderr("starling-bench: \(error)\n")
            if let cluster { writeStderr("starling-bench: the workers' logs are in \(cluster.directory)\n") }
            throw ExitCode(1)
        }
    }

    private static func measure(name: String, options: CommonOptions, concurrency: Int, binary: String,
                                started: (Cluster) -> Void) async throws -> BenchReport {
        // Instant jobs: capacity never limits the dispatch being measured.
        let definition = """
            # written by starling-bench
            handler = "echo"
            concurrency = 1024
            timeout_ms = 10000

            """
        let machine = Machine.current()
        let cluster = try Cluster.start(binary: binary, service: service, definition: definition,
                                        count: options.workers, intervalMs: options.interval)
        started(cluster)
        let agreement = try await cluster.waitForAgreement()
        let entries = cluster.workers.count == 1 ? cluster.workers
            : cluster.workers.filter { $0.id != agreement.primary.id }
        writeStderr("starling-bench: \(cluster.workers.count) workers agreed in \(agreement.waitedMs) ms "
            + "(primary \(agreement.primary.address), epoch \(agreement.epoch)); \(concurrency) jobs outstanding "
            + "over \(entries.count) entry node(s) for \(options.warmup) + \(options.duration) s\n")

        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = max(configuration.maxInFlight, concurrency)
        configuration.requestTimeoutMs = 10_000
        let clients = try entries.map { try StarlingClient(nodes: [$0.address], configuration: configuration) }
        // Connect every client before the clock starts.
        for client in clients { try await client.ping() }

        var settings = LoadSettings()
        settings.service = service
        settings.concurrency = concurrency
        settings.durationS = options.duration
        settings.warmupS = options.warmup
        settings.payloadBytes = options.payloadBytes
        let counters = LoadCounters()
        async let progress: Void = Progress.run(counters: counters, warmupS: options.warmup, durationS: options.duration)
        let result = await LoadRun.run(clients: clients, settings: settings, counters: counters)
        await progress
        for client in clients { await client.close() }

        let reportSettings = BenchReport.Settings(
            workers: options.workers, concurrency: concurrency, durationS: options.duration, warmupS: options.warmup,
            payloadBytes: options.payloadBytes, intervalMs: options.interval, entryNodes: entries.count)
        return BenchReport(benchmark: name, machine: machine, settings: reportSettings, result: result, agreementMs: agreement.waitedMs)
    }
}
