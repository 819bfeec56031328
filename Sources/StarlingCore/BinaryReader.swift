/// The errors a `BinaryReader` raises, as cases of a codec's own error type: each codec keeps its
/// own error type and the stable `reason` names counted for it.
public protocol BinaryDecodingError: Error {
    /// The bytes end inside `field`.
    static func truncated(field: String) -> Self
    /// An address whose family byte is neither 4 nor 6.
    static func badAddressFamily(_ family: UInt8) -> Self
    /// A service name that is not a valid `ServiceName`.
    static func badService(_ why: String) -> Self
}

/// The errors of the fields of the job plane (`PeerMessageCodec`): job keys and texts.
public protocol JobFieldDecodingError: BinaryDecodingError {
    static func badKey(_ why: String) -> Self
    static func badText(field: String) -> Self
    static func textTooLong(field: String, length: Int) -> Self
}

/// Reads the fields of the binary formats (heartbeats, peer frames), all integers big-endian,
/// throwing `truncated` instead of reading past the end. Works on a slice of the caller's buffer,
/// so nothing is copied but the fields that are kept. `BinaryWriting` writes the same fields.
///
/// ```
/// name     = length u8, bytes               (service names, job keys)
/// blob     = length u32, bytes
/// text     = length u16 (≤ a limit), UTF-8 bytes
/// address  = family u8 (4 or 6) | 4 or 16 host bytes | port u16
/// node id  = high u64 | low u64
/// ```
public struct BinaryReader<Failure: BinaryDecodingError> {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    /// Bytes not read yet.
    public var remaining: Int { bytes.endIndex - offset }

    public mutating func byte(_ field: String) throws(Failure) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ field: String) throws(Failure) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(field: field) }
        var value = T.zero
        for index in offset..<(offset + size) { value = value << 8 | T(bytes[index]) }
        offset += size
        return value
    }

    /// The next `count` bytes, sharing the buffer's storage.
    public mutating func bytes(_ count: Int, _ field: String) throws(Failure) -> ArraySlice<UInt8> {
        guard count <= remaining else { throw .truncated(field: field) }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// A name: a one-byte length, then that many bytes.
    public mutating func name(_ field: String) throws(Failure) -> ArraySlice<UInt8> {
        try bytes(Int(try byte("\(field) length")), field)
    }

    /// A blob: a four-byte length, then that many bytes.
    public mutating func blob(_ field: String) throws(Failure) -> [UInt8] {
        Array(try bytes(Int(try integer(UInt32.self, field)), field))
    }

    public mutating func nodeID(_ field: String) throws(Failure) -> NodeID {
        NodeID(high: try integer(UInt64.self, field), low: try integer(UInt64.self, field))
    }

    /// What `appendWorkload` wrote; `field` names whose workload it is ("" or "gossip ").
    public mutating func workload(_ field: String) throws(Failure) -> Workload {
        Workload(
            running: try integer(UInt32.self, "\(field)running"),
            capacity: try integer(UInt32.self, "\(field)capacity"),
            backlog: try integer(UInt32.self, "\(field)backlog"),
            jobTimeoutMs: try integer(UInt32.self, "\(field)job timeout"))
    }

    public mutating func address(_ field: String) throws(Failure) -> NodeAddress {
        let family = try byte(field)
        let host: NodeAddress.Host
        switch family {
        case 4: host = .ipv4(try integer(UInt32.self, field))
        case 6: host = .ipv6(high: try integer(UInt64.self, field), low: try integer(UInt64.self, field))
        default: throw .badAddressFamily(family)
        }
        return NodeAddress(host: host, port: try integer(UInt16.self, field))
    }

    /// A service name, validated; `cache` holds the last one read on this connection, so a
    /// repeated name is not validated again.
    /// `service(cache:)` with several names remembered (at most `keeping`).
    public mutating func service(caches: inout [ServiceName], keeping: Int) throws(Failure) -> ServiceName {
        let start = offset
        let bytes = try name("service")
        for cached in caches where cached.hasBytes(bytes) { return cached }
        offset = start
        var none: ServiceName?
        let service = try self.service(cache: &none)
        if caches.count < keeping { caches.append(service) }
        return service
    }

    public mutating func service(cache: inout ServiceName?) throws(Failure) -> ServiceName {
        let bytes = try name("service")
        if let cached = cache, cached.hasBytes(bytes) { return cached }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .badService("not UTF-8") }
        do {
            let service = try ServiceName(text)
            cache = service
            return service
        } catch {
            throw .badService(error.description)
        }
    }
}

extension BinaryReader where Failure: JobFieldDecodingError {
    public mutating func key() throws(Failure) -> JobKey {
        let bytes = try name("key")
        // Keys are ASCII: a byte outside the alphabet fails here without building a string.
        guard bytes.allSatisfy(JobKey.isAllowed) else {
            throw .badKey(bytes.isEmpty ? "job key is empty" : "job key has a byte outside A-Z, a-z, 0-9, '.', '_', ':', '-'")
        }
        do {
            return try JobKey(bytes: bytes)
        } catch {
            throw .badKey(error.description)
        }
    }

    /// A text of at most `maxBytes` bytes of UTF-8.
    public mutating func text(_ field: String, maxBytes: Int) throws(Failure) -> String {
        let count = Int(try integer(UInt16.self, field))
        guard count <= maxBytes else { throw .textTooLong(field: field, length: count) }
        guard let text = String(validating: try bytes(count, field), as: UTF8.self) else { throw .badText(field: field) }
        return text
    }
}
