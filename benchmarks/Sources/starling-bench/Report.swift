import Foundation
import StarlingTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The machine the run happened on.
struct Machine: Codable, Sendable {
    var nproc: Int
    var cpuModel: String
    var kernel: String
    /// The 1-minute load average just before the workers started: other work on the machine
    /// skews every figure.
    var loadAverage1m: Double

    static func current() -> Machine {
        let cpuinfo = ProcFile.read("/proc/cpuinfo") ?? ""
        let model = cpuinfo.split(separator: "\n")
            .first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        // The release uname(2) reports.
        let release = ProcFile.read("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        let loadavg = ProcFile.read("/proc/loadavg") ?? ""
        let load = loadavg.split(separator: " ").first.flatMap { Double($0) } ?? -1
        return Machine(nproc: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), cpuModel: model, kernel: release,
                       loadAverage1m: load)
    }

    enum CodingKeys: String, CodingKey {
        case nproc
        case cpuModel = "cpu_model"
        case kernel
        case loadAverage1m = "load_average_1m"
    }
}

/// Everything one run reports, as printed and as written with `--json`.
struct BenchReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var workers: Int
        var concurrency: Int
        var durationS: Double
        var warmupS: Double
        var payloadBytes: Int
        var intervalMs: Int
        /// Workers the clients submit to (every worker but the primary; the primary if W = 1).
        var entryNodes: Int

        enum CodingKeys: String, CodingKey {
            case workers, concurrency
            case durationS = "duration_s"
            case warmupS = "warmup_s"
            case payloadBytes = "payload_bytes"
            case intervalMs = "interval_ms"
            case entryNodes = "entry_nodes"
        }
    }

    struct Latency: Codable, Sendable {
        var p50Us: UInt64
        var p90Us: UInt64
        var p99Us: UInt64
        var p999Us: UInt64
        var maxUs: UInt64
        var meanUs: Double

        enum CodingKeys: String, CodingKey {
            case p50Us = "p50_us"
            case p90Us = "p90_us"
            case p99Us = "p99_us"
            case p999Us = "p99_9_us"
            case maxUs = "max_us"
            case meanUs = "mean_us"
        }
    }

    var benchmark: String
    /// `starling` (`-raw`, `-keyed`), `gearmand` or `nats`.
    var system: String
    var date: String
    var machine: Machine
    var settings: Settings
    var jobs: UInt64
    var jobsPerSecond: Double
    var latency: Latency
    /// Wrong answers and failed calls inside the measured window.
    var errors: UInt64
    /// Over the whole run (warm-up and drain included), by kind.
    var errorsTotal: UInt64
    var errorKinds: [String: UInt64]
    var jobsPerEntryNode: [UInt64]
    /// Time from the first STATUS poll until every worker agreed on one primary (gearmand: 0).
    var agreementMs: UInt64
    /// Jobs submitted over the whole run.
    var submitted: UInt64
    /// Jobs with no answer at all (timed out, or lost with their connection).
    var lost: UInt64
    /// Answers for a job already answered (or never submitted) that reached the bench.
    var duplicates: UInt64
    /// CPU the bench process (load generator and client library) used per measured job, in µs.
    /// Absent in reports from before it was measured.
    var benchCPUPerJobUs: Double?
    /// What the `failure` scenario adds.
    var failure: FailureFigures?
    /// What the `scale` scenario adds.
    var scale: ScaleFigures?
    /// What the `spread` scenario adds.
    var spread: SpreadFigures?

    enum CodingKeys: String, CodingKey {
        case benchmark, system, date, machine, settings, jobs, latency, errors, submitted, lost, duplicates, failure, scale, spread
        case jobsPerSecond = "jobs_per_s"
        case errorsTotal = "errors_total"
        case errorKinds = "error_kinds"
        case jobsPerEntryNode = "jobs_per_entry_node"
        case agreementMs = "agreement_ms"
        case benchCPUPerJobUs = "bench_cpu_us_per_job"
    }

    init(benchmark: String, system: String, machine: Machine, settings: Settings, result: LoadResult,
         agreementMs: UInt64) {
        let histogram = result.latencyUs
        self.benchmark = benchmark
        self.system = system
        date = ISO8601DateFormatter().string(from: Date())
        self.machine = machine
        self.settings = settings
        jobs = result.measuredJobs
        jobsPerSecond = result.jobsPerSecond
        let empty = histogram.totalCount == 0
        latency = Latency(
            p50Us: empty ? 0 : histogram.valueAtPercentile(50),
            p90Us: empty ? 0 : histogram.valueAtPercentile(90),
            p99Us: empty ? 0 : histogram.valueAtPercentile(99),
            p999Us: empty ? 0 : histogram.valueAtPercentile(99.9),
            maxUs: empty ? 0 : histogram.max,
            meanUs: empty ? 0 : (histogram.mean * 10).rounded() / 10)
        errors = result.measuredErrors
        errorsTotal = result.totalErrors
        errorKinds = result.errorKinds
        jobsPerEntryNode = result.jobsPerEntry
        self.agreementMs = agreementMs
        submitted = result.submitted
        lost = result.lost
        duplicates = result.duplicates
        benchCPUPerJobUs = result.measuredJobs > 0 ? (result.benchCPUPerJobUs * 10).rounded() / 10 : nil
    }

    /// The report as a readable table.
    var table: String {
        let s = settings
        var rows: [(String, String)] = [
            ("benchmark", "\(benchmark) (\(system))"),
            ("machine", "\(machine.nproc) CPUs, \(machine.cpuModel), Linux \(machine.kernel)"),
            ("load before", String(format: "%.2f (1-minute load average before the workers started)",
                                   machine.loadAverage1m)),
            ("workers", "\(s.workers) (entry nodes: \(s.entryNodes), heartbeat interval \(s.intervalMs) ms)"),
            ("concurrency", "\(s.concurrency) jobs outstanding"),
            ("payload", "\(s.payloadBytes) bytes"),
            ("measured", "\(Self.number(s.durationS)) s after \(Self.number(s.warmupS)) s of warm-up"),
            ("jobs", "\(jobs)"),
            ("throughput", "\(Int(jobsPerSecond.rounded())) jobs/s"),
            ("latency p50", Self.micros(latency.p50Us)),
            ("latency p90", Self.micros(latency.p90Us)),
            ("latency p99", Self.micros(latency.p99Us)),
            ("latency p99.9", Self.micros(latency.p999Us)),
            ("latency max", Self.micros(latency.maxUs)),
            ("latency mean", Self.micros(UInt64(latency.meanUs.rounded()))),
            ("errors", "\(errors) in the window, \(errorsTotal) in all"),
            ("lost", "\(lost) of \(submitted) submitted (no answer at all)"),
            ("duplicates", "\(duplicates)"),
            (spread == nil ? "per entry node" : "per connection", jobsPerEntryNode.map(String.init).joined(separator: " / ")),
            ("bench CPU per job", benchCPUPerJobUs.map { String(format: "%.1f µs (load generator and client)", $0) } ?? "-"),
        ]
        if let failure {
            for kill in failure.kills { rows.append(("  kill", String(format: "at %.2f s: ", kill.atS) + kill.what)) }
            rows.append(("longest gap", "\(failure.longestGapMs) ms (from " + String(format: "%.2f s", failure.longestGapAtS) + ")"))
        }
        if let scale {
            rows.append(("step", "C \(scale.fromConcurrency) → \(scale.toConcurrency) at " + String(format: "%.1f s", scale.stepAtS)))
            rows.append(("carried after", scale.carriedAfterMs.map { "\($0) ms" } ?? "never (within the run)"))
            rows.append(("workers", "\(scale.workersBefore) before, \(scale.workersAfter) at the end"))
            rows.append(("jobs/s", String(format: "%.0f before the step, %.0f at the end", scale.rateBefore, scale.rateAfter)))
        }
        if let spread { rows += spread.rows }
        for (kind, count) in errorKinds.sorted(by: { $0.value > $1.value }).prefix(10) {
            rows.append(("  error ×\(count)", kind))
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
            .joined(separator: "\n")
    }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        try data.write(to: URL(fileURLWithPath: path))
    }

    private static func micros(_ value: UInt64) -> String {
        value >= 10_000 ? "\(number(Double(value) / 1_000)) ms" : "\(value) µs"
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))" : String(format: "%.1f", value)
    }
}
