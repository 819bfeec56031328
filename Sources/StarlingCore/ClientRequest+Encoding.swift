extension ClientRequest {
    /// The request as it goes on the wire (docs/PROTOCOL.md); lines end in `\r\n`.
    public func encode() -> [UInt8] {
        var bytes: [UInt8] = []
        if case .submit(_, _, let payload) = self { bytes.reserveCapacity(payload.count + 160) }
        encode(into: &bytes)
        return bytes
    }

    /// Appends the request to `buffer`, so that a burst of requests goes out in one write.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .auth(let token):
            buffer.append(contentsOf: "AUTH ".utf8)
            buffer.append(contentsOf: token.value.utf8)
            buffer.append(contentsOf: "\r\n".utf8)
        case .ping:
            buffer.append(contentsOf: "PING\r\n".utf8)
        case .status:
            buffer.append(contentsOf: "STATUS\r\n".utf8)
        case .shards:
            buffer.append(contentsOf: "SHARDS\r\n".utf8)
        case .submit(let service, let key, let payload):
            buffer.append(contentsOf: "SUBMIT ".utf8)
            buffer.append(contentsOf: service.value.utf8)
            buffer.append(0x20)
            buffer.append(contentsOf: key.value.utf8)
            buffer.append(0x20)
            buffer.appendLengthAndBody(payload)
        }
    }
}
