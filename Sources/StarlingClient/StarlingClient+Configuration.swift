import StarlingCore

extension StarlingClient {
    /// Limits and timings of a client. Every limit is finite except the request timeout, which
    /// can be turned off with nil.
    public struct Configuration: Hashable, Sendable {
        /// Distinct jobs (keys) sent and not yet answered. Callers beyond it wait in a FIFO queue
        /// for a slot (their request timeout keeps running); see `maxWaiting`.
        public var maxInFlight = 1024
        /// Callers waiting for an in-flight slot; beyond it `submit` throws `.overloaded` at once.
        public var maxWaiting = 65_536
        /// How long a call may take from `submit`/`ping`/`status` to its answer, reconnections
        /// and waiting included; nil waits for ever (until `close()` or failover gives up).
        public var requestTimeoutMs: UInt64? = 30_000
        /// How long one TCP connect may take before the next node is tried.
        public var connectTimeoutMs: UInt64 = 2_000
        /// Consecutive failed connections (refused, timed out, or dropped before any answer)
        /// after which every pending call fails with `.unreachable`.
        public var maxConnectAttempts = 8
        /// How long a streak of failed connections may last before pending calls fail with
        /// `.unreachable`, whichever of this and `maxConnectAttempts` comes first.
        public var failoverTimeoutMs: UInt64 = 10_000
        /// The pause before the second attempt of a streak (the first, to the next node, is
        /// immediate); it doubles with each further attempt up to `backoffMaxMs`.
        public var backoffInitialMs: UInt64 = 50
        public var backoffMaxMs: UInt64 = 1_000
        /// The largest payload sent; larger ones are answered `.error(code: .tooLarge, ...)`
        /// locally, as every node would. The default is the hard bound of `max_payload_bytes`:
        /// within it, the service's own limit is its primary's to apply.
        public var maxPayloadBytes = ServiceDefinition.maxPayloadBytesRange.upperBound
        /// The largest answer body (result, failure text, STATUS JSON) accepted. The default is the
        /// hard bound of `max_result_bytes`, so any result a service may give is taken.
        public var maxAnswerBytes = ServiceDefinition.maxResultBytesRange.upperBound
        /// The token for nodes started with `--client-token-file` (docs/PROTOCOL.md,
        /// "Authentication"): sent as `AUTH <token>` first on every connection, and nothing else
        /// until the node answers `WELCOME`. nil sends no `AUTH`, as for an open cluster (a node
        /// without tokens also welcomes any token). A node that refuses it fails every pending call
        /// with `.unauthorized`. Never printed: `ClientToken`'s description hides it.
        public var token: ClientToken?

        public init() {}

        /// Why the configuration cannot be used, or nil.
        var problem: String? {
            if maxInFlight < 1 { return "maxInFlight must be at least 1" }
            if maxWaiting < 0 { return "maxWaiting must not be negative" }
            if requestTimeoutMs == 0 { return "requestTimeoutMs must be positive (or nil)" }
            if connectTimeoutMs == 0 { return "connectTimeoutMs must be positive" }
            if maxConnectAttempts < 1 { return "maxConnectAttempts must be at least 1" }
            if backoffMaxMs < backoffInitialMs { return "backoffMaxMs must be at least backoffInitialMs" }
            if maxPayloadBytes < 0 || maxAnswerBytes < 0 { return "size limits must not be negative" }
            return nil
        }

        /// The pause before attempt number `failures + 1` of a streak of `failures` failures.
        func backoffMs(afterFailures failures: Int) -> UInt64 {
            guard failures > 1 else { return 0 }
            let shift = UInt64(min(failures - 2, 30))
            return min(backoffInitialMs << shift, backoffMaxMs)
        }
    }
}
