import Histogram
import StarlingClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A closed-loop load: `concurrency` jobs always outstanding, each slot submitting its next job
/// as soon as the previous one is answered, for `warmupS + durationS` seconds.
struct LoadSettings: Sendable {
    var service = "echo"
    var concurrency = 64
    var durationS = 10.0
    var warmupS = 2.0
    var payloadBytes = 64
    /// With a value, each job is a sleep of this many ms (payload "N", answer "slept N ms")
    /// instead of an echo of `payloadBytes` bytes.
    var sleepMs: Int?
    /// A step in load: only this many slots run at first; the others start at `stepAtS`.
    var initialConcurrency: Int?
    /// Seconds after the start of the load (warm-up included) when the other slots start.
    var stepAtS = 0.0
    /// Record answers per millisecond (for jobs/s over time and the longest gap).
    var recordTimeline = false
    /// A job with no answer after this long counts as lost (the client gives up on it).
    var lostAfterMs: UInt64 = 10_000

    /// The whole load, warm-up included, plus the longest drain.
    var timelineS: Double { warmupS + durationS + Double(lostAfterMs) / 1_000 + 1 }

    /// The payload of a job (a sleep's milliseconds, or `payloadBytes` bytes stamped later).
    func initialPayload() -> [UInt8] {
        if let sleepMs { return Array("\(sleepMs)".utf8) }
        return [UInt8](repeating: UInt8(ascii: "x"), count: payloadBytes)
    }

    /// When slot `slot` starts, in ns after the start of the load.
    func slotStartNs(_ slot: Int) -> UInt64 {
        guard let initialConcurrency, slot >= initialConcurrency else { return 0 }
        return UInt64(stepAtS * 1e9)
    }
}

/// What the load measured. Latencies and throughput count only jobs answered inside the
/// measured window (after the warm-up, before the end); errors count over the whole run.
struct LoadResult: Sendable {
    var latencyUs = LoadResult.emptyHistogram()
    /// Jobs answered correctly inside the measured window.
    var measuredJobs: UInt64 = 0
    /// Seconds of the measured window.
    var measuredS: Double = 0
    /// Every answer (right or wrong), warm-up and drain included.
    var totalAnswers: UInt64 = 0
    /// Wrong answers and failed calls, inside the measured window.
    var measuredErrors: UInt64 = 0
    /// Wrong answers and failed calls over the whole run, by kind.
    var errorKinds: [String: UInt64] = [:]
    /// Jobs answered correctly inside the window, per entry node (the order of the clients).
    var jobsPerEntry: [UInt64] = []
    /// Jobs submitted over the whole run.
    var submitted: UInt64 = 0
    /// Jobs with no answer at all: timed out, or their connection lost and not resubmitted.
    var lost: UInt64 = 0
    /// Answers for a job that had already been answered (or was never submitted).
    var duplicates: UInt64 = 0
    /// Answers per millisecond, when `recordTimeline`.
    var timeline: Timeline?
    /// CPU seconds the bench process itself (load generator and client library) used in the
    /// measured window: what driving the load costs, beside the system's own CPU.
    var benchCPUS: Double = 0

    var totalErrors: UInt64 { errorKinds.values.reduce(0, +) }
    var jobsPerSecond: Double { measuredS > 0 ? Double(measuredJobs) / measuredS : 0 }
    /// The bench's CPU per measured job, in µs.
    var benchCPUPerJobUs: Double { measuredJobs > 0 ? benchCPUS * 1e6 / Double(measuredJobs) : 0 }

    /// 1 µs to 1 h, three significant digits.
    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                          numberOfSignificantValueDigits: .three)
    }

    /// Counts one answer that came at `answeredNs` for a job sent at `sentNs`: an error by kind
    /// (`problem`), or, inside the measured window, its latency. Both load drivers call it.
    mutating func countAnswer(answeredNs: UInt64, sentNs: UInt64, problem: String?, measured window: Range<UInt64>,
                              counters: LoadCounters) {
        totalAnswers += 1
        counters.answers.add(1, ordering: .relaxed)
        let measured = window.contains(answeredNs)
        if let problem {
            errorKinds[problem, default: 0] += 1
            counters.errors.add(1, ordering: .relaxed)
            if measured { measuredErrors += 1 }
        } else if measured {
            _ = latencyUs.record(max(1, (answeredNs - sentNs) / 1_000))
            measuredJobs += 1
        }
    }

    mutating func merge(_ other: LoadResult) {
        latencyUs.add(other.latencyUs)
        measuredJobs += other.measuredJobs
        totalAnswers += other.totalAnswers
        measuredErrors += other.measuredErrors
        errorKinds.merge(other.errorKinds, uniquingKeysWith: +)
        submitted += other.submitted
        lost += other.lost
        duplicates += other.duplicates
        if let theirs = other.timeline {
            if timeline == nil { timeline = theirs } else { timeline!.merge(theirs) }
        }
    }
}

/// Counters the progress display reads while the load runs.
final class LoadCounters: Sendable {
    let answers = Atomic<UInt64>(0)
    let errors = Atomic<UInt64>(0)
    /// Set once every slot has stopped.
    let finished = Atomic<Bool>(false)
}

enum LoadRun {
    /// Runs the load against `clients` (slot i uses client i mod count) and merges what each
    /// slot measured.
    static func run(clients: [StarlingClient], settings: LoadSettings, counters: LoadCounters,
                    start: UInt64 = monotonicNs()) async -> LoadResult {
        precondition(!clients.isEmpty && settings.concurrency > 0)
        let measureFrom = start + UInt64(settings.warmupS * 1e9)
        let end = measureFrom + UInt64(settings.durationS * 1e9)
        var total = LoadResult()
        total.jobsPerEntry = Array(repeating: 0, count: clients.count)
        await withTaskGroup(of: (Int, LoadResult).self) { group in
            for slot in 0..<settings.concurrency {
                let entry = slot % clients.count
                let client = clients[entry]
                // On the client's loop thread: a call then costs no thread hand-off.
                group.addTask(executorPreference: client.executor) {
                    let result = await runSlot(slot, client: client, settings: settings, start: start,
                                               measureFrom: measureFrom, end: end, counters: counters)
                    return (entry, result)
                }
            }
            for await (entry, result) in group {
                total.merge(result)
                total.jobsPerEntry[entry] += result.measuredJobs
            }
        }
        total.measuredS = Double(end - measureFrom) / 1e9
        counters.finished.store(true, ordering: .releasing)
        return total
    }

    /// One slot: submit, wait for the answer, check it, record, repeat until `end`.
    private static func runSlot(_ slot: Int, client: StarlingClient, settings: LoadSettings, start: UInt64,
                                measureFrom: UInt64, end: UInt64, counters: LoadCounters) async -> LoadResult {
        var result = LoadResult()
        if settings.recordTimeline { result.timeline = Timeline(durationS: settings.timelineS) }
        let delayNs = settings.slotStartNs(slot)
        if delayNs > 0 {
            let now = monotonicNs()
            if start + delayNs > now { try? await Task.sleep(for: .nanoseconds(start + delayNs - now)) }
        }
        var payload = settings.initialPayload()
        let expected = settings.sleepMs.map { Array("slept \($0) ms".utf8) }
        var sequence: UInt64 = 0
        while true {
            if settings.sleepMs == nil { stamp(&payload, slot: slot, sequence: sequence) }
            sequence += 1
            let sent = monotonicNs()
            guard sent < end else { break }
            result.submitted += 1
            var problem: String?
            var answeredAtAll = true
            do {
                switch try await client.submit(service: settings.service, payload: payload) {
                case .ok(let answer):
                    if answer != (expected ?? payload) { problem = "OK with a wrong payload (\(answer.count) bytes)" }
                case .failed(let text):
                    problem = "FAIL: \(text.prefix(120))"
                case .error(let code, let message):
                    problem = "ERR \(code.rawValue): \(message.prefix(120))"
                }
            } catch {
                // No answer: the client timed out or gave up on every node.
                problem = "lost (no answer): \("\(error)".prefix(160))"
                result.lost += 1
                answeredAtAll = false
            }
            let answered = monotonicNs()
            if answeredAtAll { result.timeline?.record(atNs: answered - start) }
            result.countAnswer(answeredNs: answered, sentNs: sent, problem: problem, measured: measureFrom..<end,
                               counters: counters)
        }
        return result
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Writes slot and sequence number (as hex) at the start of the payload, so that every job
    /// in flight carries its own bytes and a mixed-up answer shows. Payloads shorter than 16
    /// bytes carry a prefix of the stamp.
    @inline(__always)
    static func stamp(_ payload: inout [UInt8], slot: Int, sequence: UInt64) {
        let value = (UInt64(truncatingIfNeeded: slot) << 40) | (sequence & 0xFF_FFFF_FFFF)
        let count = min(16, payload.count)
        for index in 0..<count {
            payload[index] = hexDigits[Int((value >> UInt64(60 - 4 * index)) & 0xF)]
        }
    }
}
