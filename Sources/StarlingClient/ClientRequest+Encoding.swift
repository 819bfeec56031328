import StarlingCore

extension ClientRequest {
    /// The request on the wire, lines ending in `\r\n`.
    func encoded() -> [UInt8] {
        switch self {
        case .ping:
            return Array("PING\r\n".utf8)
        case .status:
            return Array("STATUS\r\n".utf8)
        case .submit(let service, let key, let payload):
            var bytes = Array("SUBMIT \(service.value) \(key.value) \(payload.count)\r\n".utf8)
            bytes.reserveCapacity(bytes.count + payload.count + 2)
            bytes += payload
            bytes += [0x0D, 0x0A]
            return bytes
        }
    }
}
