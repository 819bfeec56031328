import StarlingCore

/// The simulation's model of what lies outside the job engines: clients, handlers and peer links.
/// Each is as faithful as it needs to be to produce the faults the shell meets in production.

/// A client of the simulated cluster: it submits its jobs pipelined to one entry node; when that
/// connection breaks or a job is refused, it submits the same keys again to another node.
struct SimulatedClient {
    var plan: SimulationScenario.ClientPlan
    var index: Int
    /// Jobs submitted so far (indexes into its key list are 0..<submitted).
    var submitted = 0
    /// Submitted on the current connection and not answered yet.
    var outstanding: Set<Int> = []
    /// To submit again (refused, or the connection broke).
    var again: [Int] = []
    /// The one result (OK or FAIL) each job got.
    var results: [Int: ClientResponse] = [:]
    var connection: Connection?
    var wakeScheduled = false

    struct Connection: Equatable {
        var slot: Int
        var incarnation: Int
        var id: ClientID
    }

    init(plan: SimulationScenario.ClientPlan, index: Int) {
        self.plan = plan
        self.index = index
    }

    func key(_ n: Int) -> JobKey { try! JobKey("c\(index)-\(n)") }

    /// Every job's payload is derived from its key, so every submission of a key is the same job.
    func payload(_ n: Int) -> [UInt8] { Array("payload of c\(index)-\(n)".utf8) }

    var isDone: Bool { submitted == plan.jobs && outstanding.isEmpty && again.isEmpty }

    /// A job it submitted still has no answer.
    var awaitsAnswers: Bool { results.count < submitted }
}

/// How a simulated handler treats a job: decided by the job's key, so every run of one job (a
/// dispatch again after a crash) takes the same course and gives the same outcome.
enum SimulatedHandler {
    static let timeoutMs: Int64 = 300

    static func behaviour(of key: JobKey) -> (durationMs: ClosedRange<Int64>, outcome: JobOutcome) {
        let digits = key.value.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        let result = Array("done \(key.value) #\(digits % 997)".utf8)
        switch digits % 10 {
        case 0...4: return (0...1, .succeeded(result))                 // instant
        case 5, 6: return (50...400, .succeeded(result))               // slow
        case 7: return (1...5, .failed("exit status 1"))              // failing
        case 8: return (timeoutMs...timeoutMs, .failed("timed out after \(timeoutMs) ms"))  // timing out
        default: return (5...30, .succeeded(result))
        }
    }

    /// The answer a client must get for `key`.
    static func expected(for key: JobKey) -> ClientResponse {
        behaviour(of: key).outcome.response(for: key)
    }
}

/// One direction of the peer link between two processes (a TCP connection in production): FIFO,
/// with a bound on the bytes in flight beyond which the sender's shell drops frames.
struct SimulatedLink {
    /// Bumped when the link breaks: frames of an older generation are lost.
    var generation = 0
    var bytesInFlight = 0
    /// When the last frame sent on it arrives: later frames arrive after it (FIFO).
    var lastArrivalMs: Int64 = 0
    var stalledUntilMs: Int64 = 0
}
