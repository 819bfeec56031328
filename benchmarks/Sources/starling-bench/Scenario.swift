import ArgumentParser
import Foundation
import StarlingClient

#if canImport(Glibc)
import Glibc
#endif

/// One scenario run: which load, and what happens during it.
struct ScenarioPlan: Sendable {
    var name: String
    var concurrency: Int
    var failure: FailurePlan?
    var scale: ScalePlan?
    var spread: SpreadPlan?
}

/// Kills during the load; times are seconds after the start of the load (warm-up included).
struct FailurePlan: Sendable {
    var kind: FailureKind
    var firstAtS: Double
    var secondAtS: Double
    var restartAfterMs: Int
}

/// A step in load of sleep jobs; `stepAtS` is seconds after the start of the load.
struct ScalePlan: Sendable {
    var from: Int
    var to: Int
    var stepAtS: Double
    var sleepMs: Int
    var workerConcurrency: Int
    var maxWorkers: Int
}

/// What a system-specific run hands back to the runner.
struct SystemRun: Sendable {
    var result: LoadResult
    var entryNodes: Int
    var agreementMs: UInt64 = 0
    var kills: [KillEvent] = []
    var workersOverTime: [[Double]] = []
    /// Where the jobs ran (`spread`).
    var spread: SpreadFigures?
    /// Where the processes' logs are.
    var directory: String
}

/// Runs a scenario against either system: setup, load, kills, report, cleanup of every child.
enum ScenarioRunner {
    static func run(_ plan: ScenarioPlan, options: CommonOptions) async throws {
        let signals = SignalGuard.install { number in
            writeStderr("\nstarling-bench: signal \(number): stopping every process it started\n")
        }
        defer { withExtendedLifetime(signals) {} }
        let machine = Machine.current()
        var directory: String?
        do {
            let run: SystemRun
            switch options.system {
            case .starling: run = try await StarlingSystem.run(plan, options: options) { directory = $0 }
            case .gearmand: run = try await GearmandSystem.run(plan, options: options) { directory = $0 }
            case .nats: run = try await NATSSystem.run(plan, options: options) { directory = $0 }
            }
            Children.shared.stopAll()
            if options.keepLogs {
                writeStderr("starling-bench: the logs are in \(run.directory)\n")
            } else {
                try? FileManager.default.removeItem(atPath: run.directory)
            }
            let report = makeReport(plan, options: options, machine: machine, run: run)
            print(report.table)
            if let path = options.json {
                try report.writeJSON(to: path)
                print("JSON written to \(path)")
            }
            // Under failure, errors are what is measured; elsewhere any error fails the run.
            if plan.failure == nil && plan.scale == nil && report.errorsTotal > 0 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Children.shared.stopAll()
            writeStderr("starling-bench: \(error)\n")
            if let folder = directory { writeStderr("starling-bench: the logs are in \(folder)\n") }
            throw ExitCode(1)
        }
    }

    static func settings(_ plan: ScenarioPlan, options: CommonOptions) -> LoadSettings {
        var settings = LoadSettings()
        settings.service = plan.scale == nil && plan.spread == nil ? "echo" : "sleep"
        settings.concurrency = plan.concurrency
        settings.durationS = options.duration
        settings.warmupS = options.warmup
        settings.payloadBytes = options.payloadBytes
        settings.lostAfterMs = UInt64(options.lostAfterMs)
        settings.recordTimeline = plan.failure != nil || plan.scale != nil
        if let scale = plan.scale {
            settings.sleepMs = scale.sleepMs
            settings.initialConcurrency = scale.from
            settings.stepAtS = scale.stepAtS
        }
        if let spread = plan.spread { settings.sleepMs = spread.sleepMs }
        return settings
    }

    /// Runs the load with the progress line.
    static func load(_ settings: LoadSettings, start: UInt64,
                     _ body: @Sendable (LoadCounters) async -> LoadResult) async -> LoadResult {
        let counters = LoadCounters()
        async let progress: Void = Progress.run(counters: counters, warmupS: settings.warmupS, durationS: settings.durationS)
        let measureFrom = start + UInt64(settings.warmupS * 1e9)
        async let benchCPUS = processCPUSeconds(from: measureFrom, to: measureFrom + UInt64(settings.durationS * 1e9))
        var result = await body(counters)
        await progress
        result.benchCPUS = await benchCPUS
        return result
    }

    /// The CPU seconds this process used between two monotonic instants (ns), sampled when each
    /// comes.
    private static func processCPUSeconds(from: UInt64, to end: UInt64) async -> Double {
        func sleep(until instant: UInt64) async {
            let now = monotonicNs()
            if instant > now { try? await Task.sleep(for: .nanoseconds(instant - now)) }
        }
        func used() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec
            let micros = usage.ru_utime.tv_usec + usage.ru_stime.tv_usec
            return Double(seconds) + Double(micros) / 1e6
        }
        await sleep(until: from)
        let before = used()
        await sleep(until: end)
        return used() - before
    }

    private static func makeReport(_ plan: ScenarioPlan, options: CommonOptions, machine: Machine,
                                   run: SystemRun) -> BenchReport {
        let settings = BenchReport.Settings(
            workers: plan.scale == nil ? options.workers : options.system == .starling ? plan.scale!.maxWorkers : 1,
            concurrency: plan.concurrency,
            durationS: options.duration, warmupS: options.warmup,
            payloadBytes: plan.scale.map { "\($0.sleepMs)".utf8.count }
                ?? plan.spread.map { "\($0.sleepMs)".utf8.count } ?? options.payloadBytes,
            intervalMs: options.interval, entryNodes: run.entryNodes)
        var report = BenchReport(benchmark: plan.name, system: options.systemName, machine: machine,
                                 settings: settings, result: run.result, agreementMs: run.agreementMs)
        report.spread = run.spread
        let endS = options.warmup + options.duration
        let timeline = run.result.timeline ?? Timeline(durationS: endS)
        let bucketMs = 100
        if let failure = plan.failure {
            let gap = timeline.longestGap(fromS: options.warmup, toS: endS)
            report.failure = FailureFigures(
                kind: failure.kind.rawValue, kills: run.kills, bucketMs: bucketMs,
                jobsPerSecond: timeline.rates(bucketMs: bucketMs, fromS: 0, toS: endS),
                longestGapMs: gap.ms, longestGapAtS: gap.atS,
                restartAfterMs: options.system != .starling && failure.kind == .server && failure.restartAfterMs > 0
                    ? failure.restartAfterMs : nil)
        }
        if let scale = plan.scale {
            let rates = timeline.rates(bucketMs: bucketMs, fromS: 0, toS: endS)
            func mean(_ fromS: Double, _ toS: Double) -> Double {
                let slice = rates[max(0, Int(fromS * 10))..<min(rates.count, Int(toS * 10))]
                return slice.isEmpty ? 0 : slice.reduce(0, +) / Double(slice.count)
            }
            let before = mean(scale.stepAtS - 1, scale.stepAtS)
            let after = mean(endS - 3, endS)
            // Carried: the first moment after the step that jobs/s over 500 ms reach 90 % of the
            // final plateau, if the plateau is well above the load before (more workers at work).
            var carried: Int?
            var t = scale.stepAtS + 0.5
            while after >= 1.5 * before && t <= endS {
                if mean(t - 0.5, t) >= 0.9 * after {
                    carried = Int(((t - scale.stepAtS) * 1_000).rounded())
                    break
                }
                t += 0.1
            }
            let counts = run.workersOverTime
            report.scale = ScaleFigures(
                fromConcurrency: scale.from, toConcurrency: scale.to, stepAtS: scale.stepAtS, sleepMs: scale.sleepMs,
                autoscaled: options.system == .starling, bucketMs: bucketMs, jobsPerSecond: rates,
                workers: counts,
                workersBefore: Int(counts.last(where: { $0[0] < scale.stepAtS })?[1] ?? counts.first?[1] ?? 0),
                workersAfter: Int(counts.last?[1] ?? 0),
                rateBefore: before, rateAfter: after, carriedAfterMs: carried,
                workerConcurrency: scale.workerConcurrency)
        }
        return report
    }
}
