import StarlingCore

extension ClientRequest {
    /// Appends the request as it goes on the wire (lines ending in `\r\n`) to `buffer`, so that
    /// a burst of requests goes out in one write.
    func encode(into buffer: inout [UInt8]) {
        switch self {
        case .ping:
            buffer.append(contentsOf: "PING\r\n".utf8)
        case .status:
            buffer.append(contentsOf: "STATUS\r\n".utf8)
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
