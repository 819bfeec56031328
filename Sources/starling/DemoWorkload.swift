import Foundation
import StarlingClient
import StarlingCore
import Synchronization

/// The demo's jobs: a few closed-loop "lanes" per kind, each submitting one job, checking its
/// answer, pausing, and submitting the next, until told to stop. Lanes alternate between two
/// clients, each entering the cluster at a different agent.
struct DemoJobKind: Sendable {
    var service: String
    var lanes: Int
    /// The least time from one submission of a lane to its next.
    var pace: Duration
    /// What one lane's job `n` carries, and the answer a correct run gives.
    var job: @Sendable (_ n: Int) -> (payload: [UInt8], expected: [UInt8])
    var summary: String

    static func echo() -> DemoJobKind {
        DemoJobKind(service: "echo", lanes: 4, pace: .milliseconds(20), job: { n in
            let bytes = Array("hello from starling demo #\(n)".utf8)
            return (bytes, bytes)
        }, summary: "echo: 4 lanes, a job every 20 ms each (up to 200/s)")
    }

    static func sha256() -> DemoJobKind {
        DemoJobKind(service: "sha256", lanes: 2, pace: .milliseconds(50), job: { n in
            let digest = knownDigests[n % knownDigests.count]
            return (Array("starling demo payload \(n % knownDigests.count)".utf8), Array(digest.utf8))
        }, summary: "sha256: 2 lanes, a job every 50 ms each (up to 40/s)")
    }

    static func sleep(ms: Int, lanes: Int) -> DemoJobKind {
        DemoJobKind(service: "sleep", lanes: lanes, pace: .zero, job: { _ in
            (Array("\(ms)".utf8), Array("slept \(ms) ms".utf8))
        }, summary: "sleep: \(lanes) lanes of \(ms) ms jobs back to back (more than one worker can do: watch it scale)")
    }

    /// SHA-256 of "starling demo payload 0" … "7", lowercase hex.
    private static let knownDigests = [
        "d452d093192aa5ccdddb739ac4cd81d2f580e033162a57519d77a601e7208edb",
        "939051fa8f50ee9eb594217efe50fb5bc80c075cc58674a51613ea7f91b43e44",
        "6c7d59ec067ee68249b4590a39bc711a14687f724f28ed83c54b24c5f4489f94",
        "e69386960bfdd3ae41170ab40c83c6eaa2a09457d352644de09fa73ebc2fb01b",
        "7bcdefd6ffafe34acecd302fb3ae7dace55425ac528c34a02b064a11c79e5435",
        "29c235f3e3c4856cf5af4c3c0ce86465ad9631c21f29a2ab63ca1382e349e6dd",
        "8b473ee5d9b8c9cdb214c2e073b59bb55a7b58825ccd485bf081bef3c6ec356f",
        "babf1d76f351062603a4482e91566fa6e408781264f452affa9a180927ff6f5c",
    ]
}

/// Counts of one job kind.
struct DemoJobCounts: Sendable {
    var submitted = 0
    var ok = 0
    var failed = 0
    var errors = 0
    /// `OK` with a result other than the expected one.
    var wrong = 0
    /// No answer at all (the client gave up): these are lost.
    var unanswered = 0
    /// `BUSY`/`UNAVAILABLE` answers retried with the same key (not counted as errors).
    var retried = 0

    var answered: Int { ok + failed + errors + wrong }
    var lost: Int { submitted - answered }

    static func + (a: Self, b: Self) -> Self {
        DemoJobCounts(
            submitted: a.submitted + b.submitted, ok: a.ok + b.ok, failed: a.failed + b.failed,
            errors: a.errors + b.errors, wrong: a.wrong + b.wrong, unanswered: a.unanswered + b.unanswered,
            retried: a.retried + b.retried)
    }
}

/// The workload's shared tallies: updated by lanes, read by the display.
final class DemoTally: Sendable {
    private struct State {
        var counts: [String: DemoJobCounts] = [:]
        var latenciesMs: [String: [Double]] = [:]
        /// The first few problems, to print.
        var problems: [String] = []
        var problemCount = 0
    }

    private let state = Mutex(State())

    func submitted(_ service: String) {
        state.withLock { $0.counts[service, default: DemoJobCounts()].submitted += 1 }
    }

    func record(_ service: String, latencyMs: Double, update: (inout DemoJobCounts) -> Void) {
        state.withLock {
            update(&$0.counts[service, default: DemoJobCounts()])
            $0.latenciesMs[service, default: []].append(latencyMs)
        }
    }

    func retried(_ service: String) {
        state.withLock { $0.counts[service, default: DemoJobCounts()].retried += 1 }
    }

    /// Notes a problem; returns its text when it is among the first few (to print), nil otherwise.
    func problem(_ text: String) -> String? {
        state.withLock {
            $0.problemCount += 1
            guard $0.problems.count < 10 else { return nil }
            $0.problems.append(text)
            return text
        }
    }

    var counts: [String: DemoJobCounts] { state.withLock { $0.counts } }
    var total: DemoJobCounts { counts.values.reduce(DemoJobCounts(), +) }
    /// Submit-to-answer times per service, in milliseconds.
    var latenciesMs: [String: [Double]] { state.withLock { $0.latenciesMs } }
    var problemCount: Int { state.withLock { $0.problemCount } }
}

/// Runs the lanes until `stop()`; `waitUntilDone` then waits for every job to get its answer.
final class DemoWorkload: Sendable {
    let tally = DemoTally()
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    /// Called with a line to print about a job that went wrong (from any thread).
    private let report: @Sendable (String) -> Void

    init(report: @escaping @Sendable (String) -> Void) {
        self.report = report
    }

    /// Starts every lane of `kinds`, alternating between `clients`.
    func start(kinds: [DemoJobKind], clients: [StarlingClient]) {
        var laneNumber = 0
        for kind in kinds {
            for lane in 0..<kind.lanes {
                let client = clients[laneNumber % clients.count]
                laneNumber += 1
                running.add(1, ordering: .sequentiallyConsistent)
                let name = "\(kind.service)\(lane)"
                Task.detached { [self] in
                    await runLane(kind: kind, name: name, client: client)
                    running.subtract(1, ordering: .sequentiallyConsistent)
                }
            }
        }
    }

    /// No lane submits another job after this; jobs in flight still get their answers.
    func stop() { stopping.store(true, ordering: .sequentiallyConsistent) }

    /// Lanes still waiting for an answer.
    var lanesRunning: Int { running.load(ordering: .sequentiallyConsistent) }

    private func runLane(kind: DemoJobKind, name: String, client: StarlingClient) async {
        var n = 0
        let clock = ContinuousClock()
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let started = clock.now
            let (payload, expected) = kind.job(n)
            await runJob(service: kind.service, key: "demo-\(runID)-\(name)-\(n)", payload: payload, expected: expected, client: client)
            n += 1
            let next = started + kind.pace
            if next > clock.now { try? await Task.sleep(until: next, clock: clock) }
        }
    }

    /// One job to its answer: `BUSY` and `UNAVAILABLE` are retried with the same key (as the
    /// protocol asks of clients) for up to 10 s.
    private func runJob(service: String, key: String, payload: [UInt8], expected: [UInt8], client: StarlingClient) async {
        tally.submitted(service)
        let clock = ContinuousClock()
        let started = clock.now
        var backoff = Duration.milliseconds(20)
        while true {
            let answer: JobAnswer
            do {
                answer = try await client.submit(service: service, payload: payload, key: key)
            } catch {
                let ms = Self.milliseconds(clock.now - started)
                tally.record(service, latencyMs: ms) { $0.unanswered += 1 }
                // A closed client means the demo is stopping (Ctrl-C, an error): nothing to tell.
                if error != .closed { note("\(service) job \(key): no answer: \(error)") }
                return
            }
            let ms = Self.milliseconds(clock.now - started)
            switch answer {
            case .ok(let result) where result == expected:
                tally.record(service, latencyMs: ms) { $0.ok += 1 }
            case .ok(let result):
                tally.record(service, latencyMs: ms) { $0.wrong += 1 }
                note("\(service) job \(key): wrong result '\(Self.preview(result))', expected '\(Self.preview(expected))'")
            case .failed(let text):
                tally.record(service, latencyMs: ms) { $0.failed += 1 }
                note("\(service) job \(key): FAIL \(Self.preview(Array(text.utf8)))")
            case .error(let code, _) where (code == .busy || code == .unavailable) && clock.now - started < .seconds(10):
                tally.retried(service)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(500))
                continue
            case .error(let code, let message):
                tally.record(service, latencyMs: ms) { $0.errors += 1 }
                note("\(service) job \(key): ERR \(code.rawValue) \(message)")
            }
            return
        }
    }

    private func note(_ text: String) {
        if let line = tally.problem(text) { report(line) }
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    private static func preview(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(80), as: UTF8.self)
        return String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
