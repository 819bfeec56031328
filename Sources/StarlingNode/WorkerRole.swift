import StarlingCore

/// What a process of the heartbeat group does besides membership.
public enum WorkerRole: Sendable {
    /// Runs the jobs of one service type (`starling worker`).
    case worker(ServiceDefinition)
    /// An agent (`starling up`): a process of the reserved service type `agent` that accepts
    /// client jobs like any worker, spawns workers on its host when the scaler asks, and is the
    /// scaler while it is the agents' primary.
    case agent(AgentSettings)
}

/// How an agent runs.
public struct AgentSettings: Sendable {
    /// Every service type it may start workers of (the files of `jobsDirectory`).
    public var definitions: [ServiceName: ServiceDefinition]
    public var jobsDirectory: String
    /// How many workers this host may run: the headroom it advertises.
    public var maxWorkers: Int
    /// The `starling` executable its workers run.
    public var executable: String
    /// The log level its workers get.
    public var workerLogLevel: String
    /// Its own `--log-format`, which its workers get too.
    public var logFormat: LogFormat

    public init(
        definitions: [ServiceName: ServiceDefinition], jobsDirectory: String, maxWorkers: Int, executable: String,
        workerLogLevel: String = "info", logFormat: LogFormat = .text
    ) {
        self.definitions = definitions
        self.jobsDirectory = jobsDirectory
        self.maxWorkers = maxWorkers
        self.executable = executable
        self.workerLogLevel = workerLogLevel
        self.logFormat = logFormat
    }
}
