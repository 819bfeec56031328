import Foundation
import StarlingClient
import StarlingCore
import Synchronization

/// Runs the lanes until `stop()`; `lanesRunning` then tells how many still wait for an answer.
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
            let waited = clock.now - started
            let check = DemoAnswerCheck(answer: answer, expected: expected, service: service, key: key, waited: waited)
            if check == .retry {
                tally.retried(service)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(500))
                continue
            }
            tally.record(service, latencyMs: Self.milliseconds(waited)) { check.count(into: &$0) }
            if let problem = check.problem { note(problem) }
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
}
