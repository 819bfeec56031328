/// What running a job's handler produced.
public enum JobOutcome: Hashable, Sendable {
    /// The handler succeeded: its result (for a command, its stdout).
    case succeeded([UInt8])
    /// The handler ran and failed (non-zero exit, timeout, crash): why, for the client's `FAIL`.
    case failed(String)
}
