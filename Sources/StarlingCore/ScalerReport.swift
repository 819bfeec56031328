/// What the scaler saw of one service type at its last tick, and why it could not act if it
/// could not: for `starling status` and for logs (the shell logs `blocked` when it changes).
public struct ScalerReport: Hashable, Sendable {
    public var service: ServiceName
    /// Workers as the bounds count them: members not leaving, plus spawns on their way, minus
    /// retirements requested and not yet under way.
    public var workers: Int
    public var spawnsInFlight: Int
    public var retirementsInFlight: Int
    /// Members that run its jobs: its standbys, or its primary when it has none.
    public var executors: Int
    /// Their slots.
    public var executingCapacity: Int
    /// Jobs running on its members that are not leaving.
    public var running: Int
    /// Jobs queued at its primary and not yet dispatched.
    public var backlog: Int
    /// Since when demand has been above `scale_up_backlog` per executing worker, if it is.
    public var highSinceMs: Int64?
    /// Since when demand has been low enough to retire a worker, if it is.
    public var lowSinceMs: Int64?
    /// Why a worker it needs could not be asked for (no agent with headroom, at `max_workers`);
    /// nil when nothing is blocked.
    public var blocked: String?

    public init(
        service: ServiceName, workers: Int = 0, spawnsInFlight: Int = 0, retirementsInFlight: Int = 0,
        executors: Int = 0, executingCapacity: Int = 0, running: Int = 0, backlog: Int = 0,
        highSinceMs: Int64? = nil, lowSinceMs: Int64? = nil, blocked: String? = nil
    ) {
        self.service = service
        self.workers = workers
        self.spawnsInFlight = spawnsInFlight
        self.retirementsInFlight = retirementsInFlight
        self.executors = executors
        self.executingCapacity = executingCapacity
        self.running = running
        self.backlog = backlog
        self.highSinceMs = highSinceMs
        self.lowSinceMs = lowSinceMs
        self.blocked = blocked
    }
}
