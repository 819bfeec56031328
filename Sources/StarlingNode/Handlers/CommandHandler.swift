import Foundation
import StarlingCore
import StarlingUV

/// Runs each job as an external program (`command = [...]` in `jobs/*.toml`).
///
/// The payload goes to the program's stdin, followed by EOF; its stdout is the result. Exit status
/// 0 succeeds; a non-zero exit or a fatal signal fails with the last bytes of its stderr. Each run
/// is a process group of its own: a program that runs past the timeout, writes more than
/// `Limits.maxOutputBytes` or is cancelled (a drain that ran out of time, a shutdown) has its
/// whole group ended, SIGTERM then SIGKILL after `terminationGraceMs`, and is reaped before the
/// job completes. A program that does not read its stdin is not an error in itself (the write
/// fails with EPIPE and is dropped); its exit status decides. The process inherits this process's
/// working directory and environment, plus `STARLING_JOB_KEY` (the job's key) and
/// `STARLING_SERVICE`.
public final class CommandHandler: JobHandler {
    /// How long a group that was sent SIGTERM has to end before SIGKILL: enough for a program to
    /// clean up after itself, short enough that a stop is not held up.
    public static let terminationGraceMs: UInt64 = 2_000
    /// The environment variable that holds the job's key.
    public static let jobKeyVariable = "STARLING_JOB_KEY"
    /// The environment variable that holds the service type.
    public static let serviceVariable = "STARLING_SERVICE"

    /// Bounds on what one job may produce.
    public struct Limits: Sendable, Equatable {
        /// Stdout beyond this fails the job and ends the program's group at once, so a result over
        /// its service's `max_result_bytes` (which `makeHandler` passes) is never held whole.
        public var maxOutputBytes: Int
        /// Only this many trailing bytes of stderr are kept, for the failure message.
        public var stderrTailBytes: Int

        public init(maxOutputBytes: Int = ServiceDefinition.defaultMaxResultBytes, stderrTailBytes: Int = 4096) {
            self.maxOutputBytes = maxOutputBytes
            self.stderrTailBytes = stderrTailBytes
        }
    }

    private let loop: EventLoop
    private let argv: [String]
    private let timeoutMs: Int64
    private let limits: Limits
    /// Every job's environment but its key, which `start` sets (over any inherited one).
    private let environment: [String: String]

    /// `argv[0]` is the program's path (not searched in `PATH`; relative paths resolve against the
    /// working directory when each job starts), the rest its arguments. `inherited` is the
    /// environment the programs get besides the two Starling variables (default: this process's).
    public init(
        loop: EventLoop, service: ServiceName, argv: [String], timeoutMs: Int64, limits: Limits = Limits(),
        inherited: [String: String] = ProcessInfo.processInfo.environment
    ) {
        precondition(!argv.isEmpty, "a command needs a program")
        precondition(timeoutMs >= 1 && limits.maxOutputBytes >= 0 && limits.stderrTailBytes >= 0)
        self.loop = loop
        self.argv = argv
        self.timeoutMs = timeoutMs
        self.limits = limits
        var environment = inherited
        environment[Self.serviceVariable] = service.value
        self.environment = environment
    }

    public func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        var environment = environment
        environment[Self.jobKeyVariable] = key.value
        return CommandJob(
            loop: loop, key: key, argv: argv, environment: environment, payload: payload, timeoutMs: timeoutMs, limits: limits,
            completion: completion)
    }
}
