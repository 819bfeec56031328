/// Why a `StarlingClient` call produced no answer from a node. Answers the node gave (`OK`,
/// `FAIL`, `ERR`) are `JobAnswer`s, never errors.
public enum StarlingClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `close()` was called before the call was answered, or before it was made.
    case closed
    /// Every node was tried and none could be reached (or each dropped the connection before
    /// answering) within the failover budget; the job may or may not have run.
    case unreachable(nodes: [String], attempts: Int, lastError: String)
    /// No answer within `Configuration.requestTimeoutMs` (time spent waiting for an in-flight
    /// slot included); the job may still run.
    case timedOut(ms: UInt64)
    /// The in-flight window and the queue of callers waiting for it are both full.
    case overloaded(inFlight: Int, waiting: Int)
    /// The calling task was cancelled; the job may still run.
    case cancelled
    /// A node list, service name, key or payload was refused before anything was sent.
    case invalidArgument(String)
    /// The node's answer to this call could not be used (over the size limit, malformed, or an
    /// `ERR` to a `PING`/`STATUS`).
    case badAnswer(String)
    /// The client's event loop could not be started.
    case startFailed(String)
    /// A node answered `ERR - UNAUTHORIZED`: `Configuration.token` is missing, wrong or no longer
    /// accepted (docs/PROTOCOL.md, "Authentication"). Every call pending on the connection fails
    /// with it at once, without trying other nodes: they share the cluster's tokens, so they would
    /// refuse it too (and count each try). No job was sent to that node, so none ran there. The
    /// next call connects afresh (to the next node).
    case unauthorized(node: String, message: String)

    public var description: String {
        switch self {
        case .closed: "the client is closed"
        case .unreachable(let nodes, let attempts, let lastError):
            "no node reachable (\(nodes.joined(separator: ", "))) after \(attempts) attempts: \(lastError)"
        case .timedOut(let ms): "no answer within \(ms) ms"
        case .overloaded(let inFlight, let waiting):
            "too many calls: \(inFlight) in flight and \(waiting) waiting already"
        case .cancelled: "cancelled"
        case .invalidArgument(let why): why
        case .badAnswer(let why): "unusable answer: \(why)"
        case .startFailed(let why): "cannot start the client's event loop: \(why)"
        case .unauthorized(let node, let message): "\(node) refused the client: UNAUTHORIZED \(message)"
        }
    }
}
