/// The versioned binary form of a heartbeat. All integers big-endian.
///
/// ```
/// magic "SH" | version u8 | flags u8 | status u8 | reserved u8 | priority i32 | sender 16 bytes
/// sequence u64 | epoch u64 | running u32 | capacity u32 | backlog u32 | address
/// service: length u8, bytes | gossip count u8, each: id 16 bytes, sequence u64, address
/// auth tag: length u8, bytes
/// address = family u8 (4 or 6) | 4 or 16 host bytes | port u16
/// ```
/// Decoding is total: any byte string gives a heartbeat or a `HeartbeatDecodingError`.
public enum HeartbeatCodec {
    public static let magic: [UInt8] = [0x53, 0x48]  // "SH"
    public static let version: UInt8 = 1
    /// Stays under a 1500-byte Ethernet MTU so heartbeats are never fragmented.
    public static let maxDatagramBytes = 1400
    public static let maxGossipEntries = 24
    public static let maxAuthTagBytes = 64

    public static func encode(_ heartbeat: Heartbeat) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + heartbeat.gossip.count * 43)
        out += magic
        out.append(version)
        out.append(heartbeat.flags.rawValue)
        out.append(heartbeat.status.rawValue)
        out.append(0)
        out.appendInteger(UInt32(bitPattern: heartbeat.priority))
        out.appendID(heartbeat.sender)
        out.appendInteger(heartbeat.sequence)
        out.appendInteger(heartbeat.epoch)
        out.appendInteger(heartbeat.workload.running)
        out.appendInteger(heartbeat.workload.capacity)
        out.appendInteger(heartbeat.workload.backlog)
        out.appendAddress(heartbeat.address)
        let service = Array(heartbeat.service.value.utf8)
        out.append(UInt8(service.count))
        out += service
        precondition(heartbeat.gossip.count <= maxGossipEntries, "too many gossip entries")
        out.append(UInt8(heartbeat.gossip.count))
        for entry in heartbeat.gossip {
            out.appendID(entry.id)
            out.appendInteger(entry.sequence)
            out.appendAddress(entry.address)
        }
        precondition(heartbeat.authTag.count <= maxAuthTagBytes, "authentication tag too long")
        out.append(UInt8(heartbeat.authTag.count))
        out += heartbeat.authTag
        return out
    }

    public static func decode(_ bytes: some Collection<UInt8>) -> Result<Heartbeat, HeartbeatDecodingError> {
        guard bytes.count <= maxDatagramBytes else { return .failure(.oversized(bytes.count)) }
        var reader = ByteReader(Array(bytes))
        do {
            return .success(try decode(from: &reader))
        } catch {
            return .failure(error)
        }
    }

    private static func decode(from reader: inout ByteReader) throws(HeartbeatDecodingError) -> Heartbeat {
        guard try reader.bytes(2, "magic") == magic else { throw .badMagic }
        let version = try reader.byte("version")
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let flags = Heartbeat.Flags(rawValue: try reader.byte("flags")).intersection(.known)
        let statusByte = try reader.byte("status")
        guard let status = MemberStatus(rawValue: statusByte) else { throw .badStatus(statusByte) }
        _ = try reader.byte("reserved")
        let priority = Int32(bitPattern: try reader.integer(UInt32.self, "priority"))
        let sender = try reader.id("sender")
        let sequence = try reader.integer(UInt64.self, "sequence")
        let epoch = try reader.integer(UInt64.self, "epoch")
        let workload = Workload(
            running: try reader.integer(UInt32.self, "running"),
            capacity: try reader.integer(UInt32.self, "capacity"),
            backlog: try reader.integer(UInt32.self, "backlog"))
        let address = try reader.address("address")
        let serviceLength = Int(try reader.byte("service length"))
        guard let serviceText = String(validating: try reader.bytes(serviceLength, "service"), as: UTF8.self) else {
            throw .badService("not UTF-8")
        }
        let service: ServiceName
        do { service = try ServiceName(serviceText) } catch { throw .badService(error.description) }
        let gossipCount = Int(try reader.byte("gossip count"))
        guard gossipCount <= maxGossipEntries else { throw .tooManyGossipEntries(gossipCount) }
        var gossip: [Heartbeat.Gossip] = []
        gossip.reserveCapacity(gossipCount)
        for _ in 0..<gossipCount {
            gossip.append(Heartbeat.Gossip(
                id: try reader.id("gossip id"),
                sequence: try reader.integer(UInt64.self, "gossip sequence"),
                address: try reader.address("gossip address")))
        }
        let tagLength = Int(try reader.byte("auth tag length"))
        guard tagLength <= maxAuthTagBytes else { throw .authTagTooLong(tagLength) }
        let authTag = try reader.bytes(tagLength, "auth tag")
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        return Heartbeat(
            sender: sender, service: service, status: status, priority: priority, epoch: epoch,
            workload: workload, address: address, flags: flags, sequence: sequence,
            gossip: gossip, authTag: authTag)
    }
}

/// Why a datagram is not a heartbeat. `reason` is the stable name used in counters and logs.
public enum HeartbeatDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    case oversized(Int)
    case truncated(field: String)
    case badMagic
    case unsupportedVersion(UInt8)
    case badStatus(UInt8)
    case badAddressFamily(UInt8)
    case badService(String)
    case tooManyGossipEntries(Int)
    case authTagTooLong(Int)
    case trailingBytes(Int)

    public var reason: String {
        switch self {
        case .oversized: "oversized"
        case .truncated: "truncated"
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .badStatus: "bad_status"
        case .badAddressFamily: "bad_address"
        case .badService: "bad_service"
        case .tooManyGossipEntries: "too_many_gossip_entries"
        case .authTagTooLong: "auth_tag_too_long"
        case .trailingBytes: "trailing_bytes"
        }
    }

    public var description: String {
        switch self {
        case .oversized(let n): "datagram of \(n) bytes is over the \(HeartbeatCodec.maxDatagramBytes)-byte limit"
        case .truncated(let field): "datagram ends inside field '\(field)'"
        case .badMagic: "not a Starling heartbeat (bad magic)"
        case .unsupportedVersion(let v): "heartbeat version \(v) is not supported (this build speaks \(HeartbeatCodec.version))"
        case .badStatus(let s): "unknown status code \(s)"
        case .badAddressFamily(let f): "unknown address family \(f)"
        case .badService(let why): "bad service name: \(why)"
        case .tooManyGossipEntries(let n): "\(n) gossip entries, at most \(HeartbeatCodec.maxGossipEntries) allowed"
        case .authTagTooLong(let n): "authentication tag of \(n) bytes, at most \(HeartbeatCodec.maxAuthTagBytes) allowed"
        case .trailingBytes(let n): "\(n) unexpected bytes after the heartbeat"
        }
    }
}

/// Reads big-endian fields, throwing `truncated` instead of reading past the end.
private struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func bytes(_ count: Int, _ field: String) throws(HeartbeatDecodingError) -> [UInt8] {
        guard count <= remaining else { throw .truncated(field: field) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func byte(_ field: String) throws(HeartbeatDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ field: String) throws(HeartbeatDecodingError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(field: field) }
        defer { offset += size }
        return bytes[offset..<offset + size].reduce(T.zero) { $0 << 8 | T($1) }
    }

    mutating func id(_ field: String) throws(HeartbeatDecodingError) -> NodeID {
        NodeID(high: try integer(UInt64.self, field), low: try integer(UInt64.self, field))
    }

    mutating func address(_ field: String) throws(HeartbeatDecodingError) -> NodeAddress {
        let family = try byte(field)
        let length: Int
        switch family {
        case 4: length = 4
        case 6: length = 16
        default: throw .badAddressFamily(family)
        }
        let host = try bytes(length, field)
        let port = try integer(UInt16.self, field)
        guard let address = NodeAddress(hostBytes: host, port: port) else { throw .badAddressFamily(family) }
        return address
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        for shift in stride(from: (size - 1) * 8, through: 0, by: -8) {
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    fileprivate mutating func appendID(_ id: NodeID) {
        appendInteger(id.high)
        appendInteger(id.low)
    }

    fileprivate mutating func appendAddress(_ address: NodeAddress) {
        let host = address.hostBytes
        append(host.count == 4 ? 4 : 6)
        self += host
        appendInteger(address.port)
    }
}
