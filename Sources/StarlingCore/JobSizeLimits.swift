/// The sizes a service's jobs may have (`max_payload_bytes`, `max_result_bytes` in its definition;
/// docs/HANDBOOK.md, "job sizes"), with the texts that name them.
///
/// A result is checked where it is made, by the executor before its `result` frame exists, so an
/// oversized result never travels: it becomes a `FAIL` naming its size, the limit and the key. A
/// payload is checked by the service's primary, which refuses it `TOO_LARGE`: an entry node of
/// another service does not know this service's limits.
public struct JobSizeLimits: Hashable, Sendable {
    public var maxPayloadBytes: Int
    public var maxResultBytes: Int

    public init(
        maxPayloadBytes: Int = ServiceDefinition.defaultMaxPayloadBytes,
        maxResultBytes: Int = ServiceDefinition.defaultMaxResultBytes
    ) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxResultBytes = maxResultBytes
    }

    /// The limits of `definition`.
    public init(_ definition: ServiceDefinition) {
        self.init(maxPayloadBytes: definition.maxPayloadBytes, maxResultBytes: definition.maxResultBytes)
    }

    /// `outcome` itself, or, for a result over `maxResultBytes`, the failure that names it.
    public func checked(_ outcome: JobOutcome, key: JobKey) -> JobOutcome {
        guard case .succeeded(let result) = outcome, result.count > maxResultBytes else { return outcome }
        return .failed(Self.resultTooLarge("\(result.count) bytes", limit: maxResultBytes, key: key))
    }

    /// The refusal text for a payload over `maxPayloadBytes`, or nil when it is within it.
    public func payloadRefusal(_ payloadBytes: Int, service: ServiceName) -> String? {
        guard payloadBytes > maxPayloadBytes else { return nil }
        return "payload of \(payloadBytes) bytes is over max_payload_bytes (\(maxPayloadBytes)) of service \(service.value)"
    }

    /// `result of 300000000 bytes is over max_result_bytes (16777216) of job k1`; `size` may say
    /// "more than N bytes" when the handler stopped reading.
    public static func resultTooLarge(_ size: String, limit: Int, key: JobKey) -> String {
        "result of \(size) is over max_result_bytes (\(limit)) of job \(key.value)"
    }
}
