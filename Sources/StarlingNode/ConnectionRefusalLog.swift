import Logging
import StarlingUV

/// Logs connections refused at the cap (or when the process was out of descriptors) at most once
/// per interval, with how many were refused since the previous line: a flood of connections makes
/// one line per interval, not one per connection. The first refusal after a quiet interval is
/// logged at once; a count still pending is logged by `flush` once the interval has passed.
struct ConnectionRefusalLog {
    static let intervalMs: Int64 = 10_000

    private var lastLineMs: Int64?
    private var refusedSinceLine = 0
    private var latest: TCPServer.Refusal?

    /// One refused connection.
    mutating func refused(_ refusal: TCPServer.Refusal, nowMs: Int64, logger: Logger) {
        refusedSinceLine += 1
        latest = refusal
        flush(nowMs: nowMs, logger: logger)
    }

    /// Logs the refusals not logged yet if an interval has passed since the last line.
    mutating func flush(nowMs: Int64, logger: Logger) {
        guard refusedSinceLine > 0, let latest else { return }
        if let lastLineMs, nowMs - lastLineMs < Self.intervalMs { return }
        let why = switch latest {
        case .atCapacity(let maxConnections): "\(maxConnections) connections open (--max-connections)"
        case .outOfDescriptors(let errorName): "out of file descriptors (\(errorName)); raise the limit (ulimit -n) or lower --max-connections"
        }
        let since = lastLineMs.map { " in the last \((nowMs - $0) / 1000) s" } ?? ""
        logger.warning("refused \(refusedSinceLine) connection(s)\(since) with ERR - BUSY: \(why)")
        lastLineMs = nowMs
        refusedSinceLine = 0
    }
}
