/// The binary frames of peer TCP connections (the job plane). All integers big-endian.
///
/// ```
/// frame    = length u32 (bytes of the body) | body
/// body     = type u8 | fields:
///   1 hello    = version u8 | sender 16 bytes | address
///   2 forward  = ticket
///   3 dispatch = epoch u64 | ticket
///   4 result   = epoch u64 | service | key | outcome
///   5 refused  = service | key | code u8 | message text
///   6 declined = epoch u64 | service | key | reason text
///   7 running  = epoch u64 | service | count u16 (≤ maxRunningKeys) | count × key
///   8 spawn    = service | reason text
///   9 retire   = reason text
///  10 spawnRefused = service | reason text
///  11 lease    = epoch u64 | service | shards u64 (bit i: shard i)
///  12 released = epoch u64 | service | shards held u64 | count u16 (≤ maxRunningKeys) | count × key
/// ticket   = service | key | entry address | payload: length u32, bytes
/// outcome  = 0 | result: length u32, bytes    or    1 | reason text
/// service, key = length u8 (1–64), bytes (validated as ServiceName / JobKey)
/// text     = length u16 (≤ maxTextBytes), UTF-8 bytes
/// address  = family u8 (4 or 6) | 4 or 16 host bytes | port u16   (as in heartbeats)
/// code     = 1 NO_SERVICE | 2 TOO_LARGE | 3 BAD_REQUEST | 4 BUSY | 5 UNAVAILABLE
/// ```
///
/// Only `hello` carries the protocol version: it is the first frame on a connection, and a peer
/// speaking another version is refused there, before any other frame is read. Decoding
/// (`PeerFrameDecoder`) is total: any byte string gives messages or a `PeerDecodingError`.
public enum PeerMessageCodec {
    public static let version: UInt8 = 1
    /// Bytes of the length prefix in front of each body.
    public static let headerBytes = 4
    /// Longest text (refusal message, decline reason, failure reason) on the wire, in UTF-8 bytes.
    /// Longer texts are cut on encoding, at a Unicode scalar boundary.
    public static let maxTextBytes = 4096
    /// Most keys in one `running` or `released` frame; a longer list must be sent as several frames.
    public static let maxRunningKeys = 8192

    /// Appends one frame (length prefix and body) to `buffer`, so a writer can batch frames into
    /// one write.
    ///
    /// Preconditions: a `running` message has at most `maxRunningKeys` keys, and a body fits a
    /// `UInt32` length. The receiver also bounds frames by kind (`PeerFrameLimits`), so payloads
    /// and results must stay within the hard bounds of job sizes.
    public static func encode(_ message: PeerMessage, into buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.appendBigEndian(UInt32(0))
        appendBody(message, to: &buffer)
        let length = buffer.count - start - headerBytes
        precondition(length <= Int(UInt32.max), "peer frame body over 4 GiB")
        for index in 0..<headerBytes {
            buffer[start + index] = UInt8(truncatingIfNeeded: length >> (24 - 8 * index))
        }
    }

    /// One frame (length prefix and body).
    public static func encode(_ message: PeerMessage) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(headerBytes + estimatedBodyBytes(message))
        encode(message, into: &buffer)
        return buffer
    }

    // MARK: - Wire codes

    enum MessageType: UInt8 {
        case hello = 1, forward, dispatch, result, refused, declined, running, spawn, retire, spawnRefused, lease, released
    }

    private static let succeeded: UInt8 = 0
    private static let failed: UInt8 = 1

    private static func wireCode(_ code: ClientErrorCode) -> UInt8 {
        switch code {
        case .noService: 1
        case .tooLarge: 2
        case .badRequest: 3
        case .busy: 4
        case .unavailable: 5
        case .unauthorized: 6
        }
    }

    private static func errorCode(wire: UInt8) -> ClientErrorCode? {
        switch wire {
        case 1: .noService
        case 2: .tooLarge
        case 3: .badRequest
        case 4: .busy
        case 5: .unavailable
        case 6: .unauthorized
        default: nil
        }
    }

    // MARK: - Encoding

    private static func appendBody(_ message: PeerMessage, to buffer: inout [UInt8]) {
        switch message {
        case .hello(let sender, let address):
            buffer.append(MessageType.hello.rawValue)
            buffer.append(version)
            buffer.appendNodeID(sender)
            buffer.appendNodeAddress(address)
        case .forward(let ticket):
            buffer.append(MessageType.forward.rawValue)
            appendTicket(ticket, to: &buffer)
        case .dispatch(let epoch, let ticket):
            buffer.append(MessageType.dispatch.rawValue)
            buffer.appendBigEndian(epoch)
            appendTicket(ticket, to: &buffer)
        case .result(let epoch, let service, let key, let outcome):
            buffer.append(MessageType.result.rawValue)
            buffer.appendBigEndian(epoch)
            buffer.appendName(service.value)
            buffer.appendName(key.value)
            switch outcome {
            case .succeeded(let result):
                buffer.append(succeeded)
                buffer.appendBlob(result)
            case .failed(let reason):
                buffer.append(failed)
                buffer.appendText(reason, maxBytes: maxTextBytes)
            }
        case .refused(let service, let key, let code, let message):
            buffer.append(MessageType.refused.rawValue)
            buffer.appendName(service.value)
            buffer.appendName(key.value)
            buffer.append(wireCode(code))
            buffer.appendText(message, maxBytes: maxTextBytes)
        case .declined(let epoch, let service, let key, let reason):
            buffer.append(MessageType.declined.rawValue)
            buffer.appendBigEndian(epoch)
            buffer.appendName(service.value)
            buffer.appendName(key.value)
            buffer.appendText(reason, maxBytes: maxTextBytes)
        case .running(let epoch, let service, let keys):
            precondition(keys.count <= maxRunningKeys, "over \(maxRunningKeys) keys in one running frame")
            buffer.append(MessageType.running.rawValue)
            buffer.appendBigEndian(epoch)
            buffer.appendName(service.value)
            buffer.appendBigEndian(UInt16(keys.count))
            for key in keys { buffer.appendName(key.value) }
        case .lease(let epoch, let service, let shards):
            buffer.append(MessageType.lease.rawValue)
            buffer.appendBigEndian(epoch)
            buffer.appendName(service.value)
            buffer.appendBigEndian(shards.bits)
        case .released(let epoch, let service, let holding, let keys):
            precondition(keys.count <= maxRunningKeys, "over \(maxRunningKeys) keys in one released frame")
            buffer.append(MessageType.released.rawValue)
            buffer.appendBigEndian(epoch)
            buffer.appendName(service.value)
            buffer.appendBigEndian(holding.bits)
            appendKeys(keys, to: &buffer)
        case .spawn(let service, let reason):
            buffer.append(MessageType.spawn.rawValue)
            buffer.appendName(service.value)
            buffer.appendText(reason, maxBytes: maxTextBytes)
        case .retire(let reason):
            buffer.append(MessageType.retire.rawValue)
            buffer.appendText(reason, maxBytes: maxTextBytes)
        case .spawnRefused(let service, let reason):
            buffer.append(MessageType.spawnRefused.rawValue)
            buffer.appendName(service.value)
            buffer.appendText(reason, maxBytes: maxTextBytes)
        }
    }

    private static func estimatedBodyBytes(_ message: PeerMessage) -> Int {
        let fixed = 1 + 8 + 2 * (1 + 64) + 19 + 4 + 2
        switch message {
        case .hello: return 1 + 1 + 16 + 19
        case .forward(let ticket), .dispatch(_, let ticket): return fixed + ticket.payload.count
        case .result(_, _, _, .succeeded(let result)): return fixed + result.count
        case .result(_, _, _, .failed(let text)), .refused(_, _, _, let text), .declined(_, _, _, let text):
            return fixed + min(text.utf8.count, maxTextBytes)
        case .running(_, _, let keys), .released(_, _, _, let keys): return fixed + 8 + keys.count * (1 + JobKey.maxLength)
        case .lease: return fixed + 8
        case .spawn(_, let reason), .retire(let reason), .spawnRefused(_, let reason): return fixed + min(reason.utf8.count, maxTextBytes)
        }
    }

    private static func appendKeys(_ keys: [JobKey], to buffer: inout [UInt8]) {
        buffer.appendBigEndian(UInt16(keys.count))
        for key in keys { buffer.appendName(key.value) }
    }

    private static func appendTicket(_ ticket: JobTicket, to buffer: inout [UInt8]) {
        buffer.appendName(ticket.service.value)
        buffer.appendName(ticket.key.value)
        buffer.appendNodeAddress(ticket.entry)
        buffer.appendBlob(ticket.payload)
    }

    // MARK: - Decoding

    /// Decodes one frame body (the bytes after the length prefix). `serviceCache` holds the last
    /// service name decoded on this connection, so a repeated name is not validated again.
    static func decodeBody(
        _ body: ArraySlice<UInt8>, serviceCache: inout ServiceName?
    ) throws(PeerDecodingError) -> PeerMessage {
        var reader = BinaryReader<PeerDecodingError>(body)
        let typeByte = try reader.byte("message type")
        guard let type = MessageType(rawValue: typeByte) else { throw .unknownType(typeByte) }
        let message: PeerMessage
        switch type {
        case .hello:
            let version = try reader.byte("version")
            guard version == Self.version else { throw .unsupportedVersion(version) }
            let sender = try reader.nodeID("sender")
            message = .hello(sender: sender, address: try reader.address("address"))
        case .forward:
            message = .forward(try ticket(from: &reader, serviceCache: &serviceCache))
        case .dispatch:
            let epoch = try reader.integer(UInt64.self, "epoch")
            message = .dispatch(epoch: epoch, ticket: try ticket(from: &reader, serviceCache: &serviceCache))
        case .result:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            let tag = try reader.byte("outcome")
            let outcome: JobOutcome
            switch tag {
            case succeeded: outcome = .succeeded(try reader.blob("result"))
            case failed: outcome = .failed(try reader.text("failure reason", maxBytes: maxTextBytes))
            default: throw .badOutcome(tag)
            }
            message = .result(epoch: epoch, service: service, key: key, outcome: outcome)
        case .refused:
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            let wire = try reader.byte("error code")
            guard let code = errorCode(wire: wire) else { throw .badErrorCode(wire) }
            message = .refused(service: service, key: key, code: code, message: try reader.text("message", maxBytes: maxTextBytes))
        case .declined:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            message = .declined(epoch: epoch, service: service, key: key, reason: try reader.text("reason", maxBytes: maxTextBytes))
        case .running:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            message = .running(epoch: epoch, service: service, keys: try keys(from: &reader))
        case .lease:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            message = .lease(epoch: epoch, service: service, shards: KeyShardSet(bits: try reader.integer(UInt64.self, "shards")))
        case .released:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let holding = KeyShardSet(bits: try reader.integer(UInt64.self, "shards held"))
            message = .released(epoch: epoch, service: service, holding: holding, running: try keys(from: &reader))
        case .spawn:
            let service = try reader.service(cache: &serviceCache)
            message = .spawn(service: service, reason: try reader.text("reason", maxBytes: maxTextBytes))
        case .retire:
            message = .retire(reason: try reader.text("reason", maxBytes: maxTextBytes))
        case .spawnRefused:
            let service = try reader.service(cache: &serviceCache)
            message = .spawnRefused(service: service, reason: try reader.text("reason", maxBytes: maxTextBytes))
        }
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        return message
    }

    private static func keys(from reader: inout BinaryReader<PeerDecodingError>) throws(PeerDecodingError) -> [JobKey] {
        let count = Int(try reader.integer(UInt16.self, "key count"))
        guard count <= maxRunningKeys else { throw .tooManyKeys(count) }
        var keys: [JobKey] = []
        // Each key takes at least two bytes: do not reserve for keys the frame cannot hold.
        keys.reserveCapacity(min(count, reader.remaining / 2))
        for _ in 0..<count { keys.append(try reader.key()) }
        return keys
    }

    private static func ticket(
        from reader: inout BinaryReader<PeerDecodingError>, serviceCache: inout ServiceName?
    ) throws(PeerDecodingError) -> JobTicket {
        let service = try reader.service(cache: &serviceCache)
        let key = try reader.key()
        let entry = try reader.address("entry")
        return JobTicket(service: service, key: key, entry: entry, payload: try reader.blob("payload"))
    }
}

/// Why bytes from a peer are not a peer message. `reason` is the stable name used in counters and
/// logs. Every error is fatal to the connection: the caller closes it.
public enum PeerDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A frame's length prefix announces more than the decoder's limit; detected from the prefix
    /// alone, before the body is buffered.
    case frameTooLarge(length: Int, limit: Int)
    /// The frame body ends inside a field (including an empty body, which has no type).
    case truncated(field: String)
    case unknownType(UInt8)
    /// A `hello` of a protocol version this build does not speak.
    case unsupportedVersion(UInt8)
    case badAddressFamily(UInt8)
    case badService(String)
    case badKey(String)
    case badErrorCode(UInt8)
    case badOutcome(UInt8)
    /// A text field is not valid UTF-8.
    case badText(field: String)
    case textTooLong(field: String, length: Int)
    case tooManyKeys(Int)
    /// The body goes on after its last field.
    case trailingBytes(Int)

    public var reason: String {
        switch self {
        case .frameTooLarge: "frame_too_large"
        case .truncated: "truncated"
        case .unknownType: "unknown_type"
        case .unsupportedVersion: "unsupported_version"
        case .badAddressFamily: "bad_address"
        case .badService: "bad_service"
        case .badKey: "bad_key"
        case .badErrorCode: "bad_error_code"
        case .badOutcome: "bad_outcome"
        case .badText: "bad_text"
        case .textTooLong: "text_too_long"
        case .tooManyKeys: "too_many_keys"
        case .trailingBytes: "trailing_bytes"
        }
    }

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let limit): "frame of \(length) bytes is over the \(limit)-byte limit"
        case .truncated(let field): "frame ends inside field '\(field)'"
        case .unknownType(let type): "unknown message type \(type)"
        case .unsupportedVersion(let v): "peer protocol version \(v) is not supported (this build speaks \(PeerMessageCodec.version))"
        case .badAddressFamily(let family): "unknown address family \(family)"
        case .badService(let why): "bad service name: \(why)"
        case .badKey(let why): "bad job key: \(why)"
        case .badErrorCode(let code): "unknown error code \(code)"
        case .badOutcome(let tag): "unknown job outcome \(tag)"
        case .badText(let field): "field '\(field)' is not valid UTF-8"
        case .textTooLong(let field, let length):
            "field '\(field)' has \(length) bytes, at most \(PeerMessageCodec.maxTextBytes) allowed"
        case .tooManyKeys(let count): "\(count) keys, at most \(PeerMessageCodec.maxRunningKeys) allowed"
        case .trailingBytes(let count): "\(count) unexpected bytes after the message"
        }
    }
}

extension PeerDecodingError: JobFieldDecodingError {}
