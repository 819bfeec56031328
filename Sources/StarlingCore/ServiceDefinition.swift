/// One service type as an operator defines it in `jobs/<name>.toml`: which handler runs its jobs,
/// how many at once, for how long, and the bounds the scaler keeps its workers within
/// (docs/HANDBOOK.md, "Service definitions").
///
/// A plain value: building one checks nothing, `validate()` checks everything and names the setting
/// at fault by its TOML key, so an operator can find it in the file.
public struct ServiceDefinition: Hashable, Sendable {
    /// A handler compiled into `starling`, for tests and benchmarks.
    public enum Builtin: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
        /// Answers with the payload.
        case echo
        /// Waits the payload's decimal milliseconds on a timer.
        case sleep
        /// Answers with the lowercase hex SHA-256 digest of the payload.
        case sha256
        /// Burns the payload's decimal microseconds of CPU off the loop thread.
        case spin

        public var description: String { rawValue }
    }

    /// What runs a job.
    public enum Handler: Hashable, Sendable, CustomStringConvertible {
        case builtin(Builtin)
        /// An external program: `argv[0]` is its path (not searched in `PATH`), the rest its arguments.
        /// The payload goes to its stdin; its stdout is the result.
        case command([String])

        public var description: String {
            switch self {
            case .builtin(let builtin): "builtin \(builtin)"
            case .command(let argv): "command \(argv)"
            }
        }
    }

    /// The settings, spelled as in `jobs/*.toml`; errors name them this way.
    public enum Key: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
        case service
        case handler
        case command
        case concurrency
        case timeoutMs = "timeout_ms"
        case minWorkers = "min_workers"
        case maxWorkers = "max_workers"
        case scaleUpBacklog = "scale_up_backlog"
        case scaleDownIdleMs = "scale_down_idle_ms"
        case maxPayloadBytes = "max_payload_bytes"
        case maxResultBytes = "max_result_bytes"

        public var description: String { rawValue }
    }

    /// A setting that is out of bounds, and why.
    public struct Invalid: Error, Hashable, Sendable, CustomStringConvertible {
        public let key: Key
        public let reason: String

        public init(key: Key, reason: String) {
            self.key = key
            self.reason = reason
        }

        public var description: String { "\(key): \(reason)" }
    }

    public static let concurrencyRange = 1...1024
    public static let timeoutMsRange: ClosedRange<Int64> = 1...86_400_000
    public static let maxWorkersRange = 1...1024
    /// Bounds of `max_payload_bytes` and `max_result_bytes`. The upper bounds are hard: client
    /// request decoders and peer frame limits are derived from them (`PeerFrameLimits`), so a job
    /// within its service's limits is never refused on its way.
    public static let maxPayloadBytesRange = 0...(64 << 20)
    public static let maxResultBytesRange = 0...(256 << 20)
    public static let defaultTimeoutMs: Int64 = 30_000
    public static let defaultMaxPayloadBytes = 1 << 20
    public static let defaultMaxResultBytes = 16 << 20
    /// Bounds the arguments of a command: count, and bytes per argument.
    public static let maxCommandArguments = 256
    public static let maxCommandArgumentBytes = 4096

    public var service: ServiceName
    public var handler: Handler
    /// Jobs one worker runs at once.
    public var concurrency: Int
    /// A job still running after this long fails ("timed out after N ms").
    public var timeoutMs: Int64
    /// The scaler keeps at least this many workers of the service; at least 1, since demand is
    /// seen at the service's primary (no scale to zero).
    public var minWorkers: Int
    /// The scaler never runs more workers of the service than this.
    public var maxWorkers: Int
    /// Queued jobs per worker above which the scaler adds a worker.
    public var scaleUpBacklog: Int
    /// How long a worker must have been idle before the scaler drains it.
    public var scaleDownIdleMs: Int64
    /// A job's payload over this is refused (`TOO_LARGE`) by the service's primary.
    public var maxPayloadBytes: Int
    /// A result over this becomes a `FAIL` where it is made, naming its size and this limit.
    public var maxResultBytes: Int

    public init(
        service: ServiceName, handler: Handler, concurrency: Int = 1, timeoutMs: Int64 = defaultTimeoutMs,
        minWorkers: Int = 1, maxWorkers: Int = 8, scaleUpBacklog: Int = 4, scaleDownIdleMs: Int64 = 10_000,
        maxPayloadBytes: Int = defaultMaxPayloadBytes, maxResultBytes: Int = defaultMaxResultBytes
    ) {
        self.service = service
        self.handler = handler
        self.concurrency = concurrency
        self.timeoutMs = timeoutMs
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.scaleUpBacklog = scaleUpBacklog
        self.scaleDownIdleMs = scaleDownIdleMs
        self.maxPayloadBytes = maxPayloadBytes
        self.maxResultBytes = maxResultBytes
    }

    /// Checks every bound; the first violation is thrown, naming its key.
    public func validate() throws(Invalid) {
        guard service != .agent else {
            throw Invalid(key: .service, reason: "\"\(service)\" is reserved for host agents (starling up)")
        }
        try validateHandler()
        try check(.concurrency, concurrency, in: Self.concurrencyRange)
        try check(.timeoutMs, timeoutMs, in: Self.timeoutMsRange)
        try check(.maxWorkers, maxWorkers, in: Self.maxWorkersRange)
        guard minWorkers >= 1 else {
            // Jobs queue at a service's primary, and the scaler sees demand in its members'
            // heartbeats: with no worker at all, nothing would ever call for the first one.
            throw Invalid(key: .minWorkers, reason: "must be at least 1, got \(minWorkers): a service with no worker "
                + "has no primary to queue its jobs, so its demand could not bring a worker back (no scale to zero)")
        }
        try check(.minWorkers, minWorkers, in: 1...maxWorkers, bound: "1...max_workers (\(maxWorkers))")
        guard scaleUpBacklog >= 1 else { throw Invalid(key: .scaleUpBacklog, reason: "must be at least 1, got \(scaleUpBacklog)") }
        guard scaleDownIdleMs >= 0 else {
            throw Invalid(key: .scaleDownIdleMs, reason: "must be at least 0, got \(scaleDownIdleMs)")
        }
        try checkSize(.maxPayloadBytes, maxPayloadBytes, in: Self.maxPayloadBytesRange)
        try checkSize(.maxResultBytes, maxResultBytes, in: Self.maxResultBytesRange)
    }

    /// A job size within its range; the message names the hard bound in MiB as well.
    private func checkSize(_ key: Key, _ value: Int, in range: ClosedRange<Int>) throws(Invalid) {
        try check(key, value, in: range, bound: "\(range) (\(range.upperBound >> 20) MiB, the hard bound)")
    }

    private func validateHandler() throws(Invalid) {
        guard case .command(let argv) = handler else { return }
        guard let program = argv.first else {
            throw Invalid(key: .command, reason: "must name a program: [\"path/to/program\", args...]")
        }
        guard !program.isEmpty else { throw Invalid(key: .command, reason: "the program path is empty") }
        guard argv.count <= Self.maxCommandArguments else {
            throw Invalid(key: .command, reason: "has \(argv.count) elements, at most \(Self.maxCommandArguments) allowed")
        }
        for (index, argument) in argv.enumerated() {
            guard !argument.utf8.contains(0) else {
                throw Invalid(key: .command, reason: "element \(index) contains a NUL byte")
            }
            guard argument.utf8.count <= Self.maxCommandArgumentBytes else {
                throw Invalid(key: .command, reason: "element \(index) is longer than \(Self.maxCommandArgumentBytes) bytes")
            }
        }
    }

    private func check<Value: BinaryInteger>(
        _ key: Key, _ value: Value, in range: ClosedRange<Value>, bound: String? = nil
    ) throws(Invalid) {
        guard range.contains(value) else {
            throw Invalid(key: key, reason: "must be in \(bound ?? "\(range.lowerBound)...\(range.upperBound)"), got \(value)")
        }
    }
}
