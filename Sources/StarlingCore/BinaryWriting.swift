/// Writes the fields of the binary formats (heartbeats, peer frames) that `BinaryReader` reads, all
/// integers big-endian, appending to a buffer so that a writer can batch frames into one write.
extension Array where Element == UInt8 {
    public mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    /// A service name or job key: a one-byte length, then its bytes (at most 64 by construction).
    public mutating func appendName(_ name: String) {
        let utf8 = name.utf8
        precondition(utf8.count <= Int(UInt8.max), "a name of over 255 bytes")
        append(UInt8(truncatingIfNeeded: utf8.count))
        append(contentsOf: utf8)
    }

    /// A four-byte length, then the bytes.
    public mutating func appendBlob(_ bytes: [UInt8]) {
        precondition(bytes.count <= Int(UInt32.max), "blob over 4 GiB")
        appendBigEndian(UInt32(truncatingIfNeeded: bytes.count))
        append(contentsOf: bytes)
    }

    /// A two-byte length, then at most `maxBytes` of `text`, cut before a UTF-8 continuation byte
    /// so that the cut text is still valid.
    public mutating func appendText(_ text: String, maxBytes: Int) {
        precondition(maxBytes <= Int(UInt16.max), "a text limit over 64 KiB")
        let utf8 = text.utf8
        var end = utf8.endIndex
        if utf8.count > maxBytes {
            end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
            while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        }
        let kept = utf8[..<end]
        appendBigEndian(UInt16(truncatingIfNeeded: kept.count))
        append(contentsOf: kept)
    }

    public mutating func appendNodeID(_ id: NodeID) {
        appendBigEndian(id.high)
        appendBigEndian(id.low)
    }

    /// Running, capacity, backlog, job timeout ms: four u32.
    public mutating func appendWorkload(_ workload: Workload) {
        appendBigEndian(workload.running)
        appendBigEndian(workload.capacity)
        appendBigEndian(workload.backlog)
        appendBigEndian(workload.jobTimeoutMs)
    }

    /// Family (4 or 6), the host's bytes in network order, port.
    public mutating func appendNodeAddress(_ address: NodeAddress) {
        switch address.host {
        case .ipv4(let host):
            append(4)
            appendBigEndian(host)
        case .ipv6(let high, let low):
            append(6)
            appendBigEndian(high)
            appendBigEndian(low)
        }
        appendBigEndian(address.port)
    }
}
