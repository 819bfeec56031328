import StarlingCore
import StarlingUV

/// Runs each job as an external program (`command = [...]` in `jobs/*.toml`).
///
/// The payload goes to the program's stdin, followed by EOF; its stdout is the result. Exit status
/// 0 succeeds; a non-zero exit or a fatal signal fails with the last bytes of its stderr. A program
/// that runs past the timeout, or writes more than `Limits.maxOutputBytes`, is killed with SIGKILL
/// and reaped before the job completes. A program that does not read its stdin is not an error in
/// itself (the write fails with EPIPE and is dropped); its exit status decides. The process
/// inherits this process's environment and working directory.
public final class CommandHandler: JobHandler {
    /// Bounds on what one job may produce.
    public struct Limits: Sendable, Equatable {
        /// Stdout beyond this fails the job and kills the program.
        public var maxOutputBytes: Int
        /// Only this many trailing bytes of stderr are kept, for the failure message.
        public var stderrTailBytes: Int

        public init(maxOutputBytes: Int = 16 << 20, stderrTailBytes: Int = 4096) {
            self.maxOutputBytes = maxOutputBytes
            self.stderrTailBytes = stderrTailBytes
        }
    }

    private let loop: EventLoop
    private let argv: [String]
    private let timeoutMs: Int64
    private let limits: Limits

    /// `argv[0]` is the program's path (not searched in `PATH`; relative paths resolve against the
    /// working directory when each job starts), the rest its arguments.
    public init(loop: EventLoop, argv: [String], timeoutMs: Int64, limits: Limits = Limits()) {
        precondition(!argv.isEmpty, "a command needs a program")
        precondition(timeoutMs >= 1 && limits.maxOutputBytes >= 0 && limits.stderrTailBytes >= 0)
        self.loop = loop
        self.argv = argv
        self.timeoutMs = timeoutMs
        self.limits = limits
    }

    public func start(payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        CommandJob(loop: loop, argv: argv, payload: payload, timeoutMs: timeoutMs, limits: limits,
                   completion: completion)
    }
}
