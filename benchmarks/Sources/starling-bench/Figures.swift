/// A kill -9 during the `failure` scenario.
struct KillEvent: Codable, Sendable {
    /// Seconds after the start of the load (warm-up included).
    var atS: Double
    var what: String

    enum CodingKeys: String, CodingKey {
        case atS = "at_s"
        case what
    }
}

/// What the `failure` scenario measures beyond `echo`.
struct FailureFigures: Codable, Sendable {
    /// `workers` (Starling: the primary, then a standby; gearmand, nats: a worker, then another)
    /// or `server` (Starling: the primary; gearmand, nats: the server itself).
    var kind: String
    var kills: [KillEvent]
    /// Milliseconds of each bucket in `jobsPerSecond`.
    var bucketMs: Int
    /// Jobs/s per bucket from the start of the load (warm-up included) to the end of the window.
    var jobsPerSecond: [Double]
    /// The longest stretch inside the measured window with no answer at all.
    var longestGapMs: Int
    var longestGapAtS: Double
    /// gearmand or nats-server restarted (as a supervisor would) this long after it was killed; nil: not killed
    /// or not restarted.
    var restartAfterMs: Int?

    enum CodingKeys: String, CodingKey {
        case kind, kills
        case bucketMs = "bucket_ms"
        case jobsPerSecond = "jobs_per_s"
        case longestGapMs = "longest_gap_ms"
        case longestGapAtS = "longest_gap_at_s"
        case restartAfterMs = "restart_after_ms"
    }
}

/// What the `scale` scenario measures.
struct ScaleFigures: Codable, Sendable {
    var fromConcurrency: Int
    var toConcurrency: Int
    /// Seconds after the start of the load when the load stepped up.
    var stepAtS: Double
    var sleepMs: Int
    /// Whether an autoscaler ran (Starling `starling up`); gearmand has none.
    var autoscaled: Bool
    var bucketMs: Int
    var jobsPerSecond: [Double]
    /// (seconds after the start, workers of the service) at each poll.
    var workers: [[Double]]
    var workersBefore: Int
    var workersAfter: Int
    /// Jobs/s over the second before the step, and over the last 3 s of the run.
    var rateBefore: Double
    var rateAfter: Double
    /// From the step until jobs/s (over 500 ms) first reached 90 % of `rateAfter`; nil if the
    /// load was never carried by more than before (`rateAfter` under 1.5 × `rateBefore`).
    var carriedAfterMs: Int?
    /// Jobs one worker runs at once.
    var workerConcurrency: Int?

    enum CodingKeys: String, CodingKey {
        case fromConcurrency = "from_concurrency"
        case toConcurrency = "to_concurrency"
        case stepAtS = "step_at_s"
        case sleepMs = "sleep_ms"
        case autoscaled
        case bucketMs = "bucket_ms"
        case jobsPerSecond = "jobs_per_s"
        case workers
        case workersBefore = "workers_before"
        case workersAfter = "workers_after"
        case rateBefore = "rate_before"
        case rateAfter = "rate_after"
        case carriedAfterMs = "carried_after_ms"
        case workerConcurrency = "worker_concurrency"
    }
}
