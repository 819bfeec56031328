import StarlingCore

/// What a node answered for one job: exactly one per `submit` call.
public enum JobAnswer: Hashable, Sendable {
    /// `OK`: the handler succeeded; its result bytes.
    case ok([UInt8])
    /// `FAIL`: the handler ran and failed (non-zero exit, timeout, crash); the node's text.
    case failed(String)
    /// `ERR`: the job was not run (no such service, too large, busy, unavailable, bad request).
    case error(code: ClientErrorCode, message: String)
}
