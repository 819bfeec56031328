/// The scaler's timing and margins (docs/HANDBOOK.md, "Scaling"). The per-service bounds and thresholds
/// (`min_workers`, `max_workers`, `scale_up_backlog`, `scale_down_idle_ms`) come from each
/// `ServiceDefinition`; these settings are cluster-wide.
///
/// Why the defaults do not flap: a service scales up only while its primary has a backlog, that is
/// while every executing slot is taken, and scales down only when the running jobs would fill at
/// most `scaleDownUtilization` (half) of the slots left after the removal. After a scale-up the
/// load is at least the old capacity, so a scale-down would need it to halve; after a scale-down
/// the load is at most half of the new capacity, so a scale-up would need it to double. Steady load,
/// and load that varies by less than a factor of two, therefore settles and stays settled.
public struct ScalerConfig: Hashable, Sendable {
    /// How long a service's backlog per executing worker must stay above its `scale_up_backlog`
    /// before a worker is added (hysteresis). 1 s is ten heartbeats at the default interval: a
    /// queue that fills for a few hundred milliseconds, before the standbys report free slots, is
    /// not worth a process.
    public var scaleUpSustainMs: Int64 = 1_000
    /// After a scale event of a service (a spawn requested, a spawned worker seen, a retirement
    /// requested), no demand-driven spawn for it for this long: the new worker is admitted (about
    /// three intervals) and takes work before demand is judged again. Replacements below
    /// `min_workers` ignore it.
    public var scaleUpCooldownMs: Int64 = 2_000
    /// After a scale event of a service, no retirement for this long, so the jobs of a retired
    /// worker move to the others and show in their heartbeats before the next one is considered.
    public var scaleDownCooldownMs: Int64 = 5_000
    /// A worker is retired only if the running jobs fit in this share of the executing slots left
    /// after removing it (with a backlog of 0, for `scale_down_idle_ms`). In 0.05...1; 0.5 keeps a
    /// factor of two between the scale-up and the scale-down points (see above).
    public var scaleDownUtilization: Double = 0.5
    /// A requested spawn counts as a worker on its way until a new worker of the service appears in
    /// the record, or for this long; then it is given up, the agent is tried last for a while, and
    /// the spawn is retried if still needed. Starting a process and its admission take about a
    /// second; 15 s leaves room for a slow host.
    public var spawnTimeoutMs: Int64 = 15_000
    /// A retirement counts as done once the worker announces that it is draining (or is gone); if
    /// it still has not after this long, it is given up and may be requested again.
    public var retireTimeoutMs: Int64 = 15_000
    /// Spawns of one service on their way at once (staggered admission): the next waits
    /// until the previous one has appeared in the record or has been given up.
    public var maxSpawnsInFlightPerService = 1
    /// Spawns of all services on their way at once, so that a cold start of many service types
    /// admits a few processes at a time. Replacements below `min_workers` are served first.
    public var maxSpawnsInFlight = 4
    /// An agent whose spawn failed or timed out is chosen last for that service for this long.
    public var spawnFailureMemoryMs: Int64 = 60_000
    /// Identities of workers not in the record for this long are forgotten. Until then one that
    /// comes back (a healed partition) is not mistaken for a newly spawned worker.
    public var forgetMembersAfterMs: Int64 = 600_000

    public init() {}

    /// The same settings with every value brought into its bounds.
    var clamped: ScalerConfig {
        var config = self
        config.scaleUpSustainMs = max(0, scaleUpSustainMs)
        config.scaleUpCooldownMs = max(0, scaleUpCooldownMs)
        config.scaleDownCooldownMs = max(0, scaleDownCooldownMs)
        config.scaleDownUtilization = scaleDownUtilization.isNaN ? 0.5 : min(1, max(0.05, scaleDownUtilization))
        config.spawnTimeoutMs = max(1, spawnTimeoutMs)
        config.retireTimeoutMs = max(1, retireTimeoutMs)
        config.maxSpawnsInFlightPerService = max(1, maxSpawnsInFlightPerService)
        config.maxSpawnsInFlight = max(1, maxSpawnsInFlight)
        config.spawnFailureMemoryMs = max(0, spawnFailureMemoryMs)
        config.forgetMembersAfterMs = max(spawnTimeoutMs, forgetMembersAfterMs)
        return config
    }
}
