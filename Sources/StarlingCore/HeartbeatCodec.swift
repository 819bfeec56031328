/// The versioned binary form of a heartbeat. All integers big-endian.
///
/// ```
/// magic "SH" | version u8 | flags u8 | status u8 | reserved u8 | priority i32 | sender 16 bytes
/// sequence u64 | epoch u64 | running u32 | capacity u32 | backlog u32 | job timeout ms u32 | address
/// service: length u8, bytes | gossip count u8, each:
///   id 16 bytes | sequence u64 | flags u8 (1 dead, 2 draining, 4 suspect, 128 state follows) | address
///   [state: status u8 | priority i32 | epoch u64 | running u32 | capacity u32 | backlog u32 |
///    job timeout ms u32 | service: length u8, bytes]
/// auth tag: length u8, bytes
/// address = family u8 (4 or 6) | 4 or 16 host bytes | port u16
/// ```
/// Decoding is total: any byte string gives a heartbeat or a `HeartbeatDecodingError`. Gossip is
/// bounded by count (`maxGossipEntries`) and by the datagram's bytes (`maxDatagramBytes`): a
/// sender fills it by `encodedSize` and `gossipBytes`. At most `maxSuspectEntries` entries may
/// carry `suspect` (an indirect probe request): each makes its receiver probe a member, so a
/// datagram asking for more is rejected rather than amplified.
public enum HeartbeatCodec {
    public static let magic: [UInt8] = [0x53, 0x48]  // "SH"
    public static let version: UInt8 = 3
    /// Stays under a 1500-byte Ethernet MTU so heartbeats are never fragmented.
    public static let maxDatagramBytes = 1400
    public static let maxGossipEntries = 24
    public static let maxAuthTagBytes = 64
    /// At most this many gossip entries of one heartbeat flagged `suspect` (docs/HANDBOOK.md,
    /// "indirect probe"): a deputy asks about its service's hubs, normally one.
    public static let maxSuspectEntries = 2

    public static func encode(_ heartbeat: Heartbeat) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + heartbeat.gossip.count * 43)
        out += magic
        out.append(version)
        out.append(heartbeat.flags.rawValue)
        out.append(heartbeat.status.rawValue)
        out.append(0)
        out.appendBigEndian(UInt32(bitPattern: heartbeat.priority))
        out.appendNodeID(heartbeat.sender)
        out.appendBigEndian(heartbeat.sequence)
        out.appendBigEndian(heartbeat.epoch)
        out.appendWorkload(heartbeat.workload)
        out.appendNodeAddress(heartbeat.address)
        out.appendName(heartbeat.service.value)
        precondition(heartbeat.gossip.count <= maxGossipEntries, "too many gossip entries")
        precondition(heartbeat.gossip.count(where: { $0.flags.contains(.suspect) }) <= maxSuspectEntries, "too many suspect entries")
        out.append(UInt8(heartbeat.gossip.count))
        for entry in heartbeat.gossip {
            out.appendNodeID(entry.id)
            out.appendBigEndian(entry.sequence)
            out.append(entry.flags.intersection(.known).rawValue | (entry.state == nil ? 0 : stateFollows))
            out.appendNodeAddress(entry.address)
            if let state = entry.state {
                out.append(state.status.rawValue)
                out.appendBigEndian(UInt32(bitPattern: state.priority))
                out.appendBigEndian(state.epoch)
                out.appendWorkload(state.workload)
                out.appendName(state.service.value)
            }
        }
        precondition(heartbeat.authTag.count <= maxAuthTagBytes, "authentication tag too long")
        out.append(UInt8(heartbeat.authTag.count))
        out += heartbeat.authTag
        precondition(out.count <= maxDatagramBytes, "heartbeat of \(out.count) bytes is over the datagram limit")
        return out
    }

    /// The gossip entry flag bit that says a state follows the address.
    static let stateFollows: UInt8 = 1 << 7

    /// The bytes `encode` gives `heartbeat`, without walking more than its gossip entries.
    public static func encodedSize(_ heartbeat: Heartbeat) -> Int {
        headerBytes(heartbeat) + heartbeat.gossip.reduce(0) { $0 + gossipBytes($1) }
    }

    /// The bytes of everything but the gossip entries, an auth tag of `maxAuthTagBytes` counted
    /// whatever the heartbeat holds, so that a tag added later still fits.
    public static func headerBytes(_ heartbeat: Heartbeat) -> Int {
        2 + 1 + 1 + 1 + 1 + 4 + 16 + 8 + 8 + 16 + addressBytes(heartbeat.address)
            + 1 + heartbeat.service.value.utf8.count + 1 + 1 + max(heartbeat.authTag.count, maxAuthTagBytes)
    }

    /// The bytes one gossip entry takes.
    public static func gossipBytes(_ entry: Heartbeat.Gossip) -> Int {
        var bytes = 16 + 8 + 1 + addressBytes(entry.address)
        if let state = entry.state { bytes += 1 + 4 + 8 + 16 + 1 + state.service.value.utf8.count }
        return bytes
    }

    static func addressBytes(_ address: NodeAddress) -> Int {
        switch address.host {
        case .ipv4: 1 + 4 + 2
        case .ipv6: 1 + 16 + 2
        }
    }

    public static func decode(_ bytes: some Collection<UInt8>) -> Result<Heartbeat, HeartbeatDecodingError> {
        var services: [ServiceName] = []
        return decode(bytes, services: &services)
    }

    /// `decode` with service names the caller keeps from datagram to datagram (a receiver hears
    /// the same few again and again): a name found there is not validated again. Validated names
    /// are added while it holds fewer than `maxCachedServices`.
    public static func decode(
        _ bytes: some Collection<UInt8>, services: inout [ServiceName]
    ) -> Result<Heartbeat, HeartbeatDecodingError> {
        guard bytes.count <= maxDatagramBytes else { return .failure(.oversized(bytes.count)) }
        var reader = BinaryReader<HeartbeatDecodingError>(Array(bytes)[...])
        do {
            return .success(try decode(from: &reader, services: &services))
        } catch {
            return .failure(error)
        }
    }

    public static let maxCachedServices = 16

    private static func decode(
        from reader: inout BinaryReader<HeartbeatDecodingError>, services: inout [ServiceName]
    ) throws(HeartbeatDecodingError) -> Heartbeat {
        guard try reader.bytes(2, "magic").elementsEqual(magic) else { throw .badMagic }
        let version = try reader.byte("version")
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let flags = Heartbeat.Flags(rawValue: try reader.byte("flags")).intersection(.known)
        let statusByte = try reader.byte("status")
        guard let status = MemberStatus(rawValue: statusByte) else { throw .badStatus(statusByte) }
        _ = try reader.byte("reserved")
        let priority = Int32(bitPattern: try reader.integer(UInt32.self, "priority"))
        let sender = try reader.nodeID("sender")
        let sequence = try reader.integer(UInt64.self, "sequence")
        let epoch = try reader.integer(UInt64.self, "epoch")
        let workload = try reader.workload("")
        let address = try reader.address("address")
        let service = try reader.service(caches: &services, keeping: maxCachedServices)
        let gossipCount = Int(try reader.byte("gossip count"))
        guard gossipCount <= maxGossipEntries else { throw .tooManyGossipEntries(gossipCount) }
        var gossip: [Heartbeat.Gossip] = []
        gossip.reserveCapacity(gossipCount)
        var suspects = 0
        for _ in 0..<gossipCount {
            let id = try reader.nodeID("gossip id")
            let sequence = try reader.integer(UInt64.self, "gossip sequence")
            let flagByte = try reader.byte("gossip flags")
            if flagByte & Heartbeat.Gossip.Flags.suspect.rawValue != 0 {
                suspects += 1
                guard suspects <= maxSuspectEntries else { throw .tooManySuspectEntries(suspects) }
            }
            let address = try reader.address("gossip address")
            var state: Heartbeat.Gossip.State?
            if flagByte & stateFollows != 0 {
                let statusByte = try reader.byte("gossip status")
                guard let status = MemberStatus(rawValue: statusByte) else { throw .badStatus(statusByte) }
                let priority = Int32(bitPattern: try reader.integer(UInt32.self, "gossip priority"))
                let epoch = try reader.integer(UInt64.self, "gossip epoch")
                let workload = try reader.workload("gossip ")
                // Entries name a few services again and again: each is validated once per datagram.
                let entryService = try reader.service(caches: &services, keeping: maxCachedServices)
                state = Heartbeat.Gossip.State(
                    service: entryService, status: status, priority: priority, epoch: epoch, workload: workload)
            }
            gossip.append(Heartbeat.Gossip(
                id: id, sequence: sequence, address: address,
                flags: Heartbeat.Gossip.Flags(rawValue: flagByte).intersection(.known), state: state))
        }
        let tagLength = Int(try reader.byte("auth tag length"))
        guard tagLength <= maxAuthTagBytes else { throw .authTagTooLong(tagLength) }
        let authTag = Array(try reader.bytes(tagLength, "auth tag"))
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
    /// More gossip entries flagged `suspect` (indirect probe requests) than `maxSuspectEntries`.
    case tooManySuspectEntries(Int)
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
        case .tooManySuspectEntries: "too_many_suspect_entries"
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
        case .tooManySuspectEntries(let n): "\(n) or more indirect probe requests, at most \(HeartbeatCodec.maxSuspectEntries) allowed"
        case .authTagTooLong(let n): "authentication tag of \(n) bytes, at most \(HeartbeatCodec.maxAuthTagBytes) allowed"
        case .trailingBytes(let n): "\(n) unexpected bytes after the heartbeat"
        }
    }
}

extension HeartbeatDecodingError: BinaryDecodingError {}
