/// One request of the TCP client protocol (docs/PROTOCOL.md), as decoded by `ClientRequestDecoder`.
public enum ClientRequest: Hashable, Sendable {
    /// `AUTH <token>` → `WELCOME`, or `ERR - UNAUTHORIZED` and the connection closes
    /// (docs/PROTOCOL.md, "Authentication"; the rule is `ClientAuthentication`'s).
    case auth(token: ClientToken)
    /// `PING` → `PONG`.
    case ping
    /// `STATUS` → `STATUS <n>` and the record as JSON (`StatusReport`).
    case status
    /// `SHARDS` → `SHARDS <service> <16 hex digits>`: the node's own service type and the key
    /// shards of it that the node holds now (docs/PROTOCOL.md, "Key shards").
    case shards
    /// `SUBMIT <service> <key> <length>` followed by exactly `length` payload bytes and a line end.
    case submit(service: ServiceName, key: JobKey, payload: [UInt8])
}
