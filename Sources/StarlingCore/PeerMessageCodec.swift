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
    /// Most keys in one `running` frame; a longer list must be sent as several frames.
    public static let maxRunningKeys = 8192

    /// Appends one frame (length prefix and body) to `buffer`, so a writer can batch frames into
    /// one write.
    ///
    /// Preconditions: a `running` message has at most `maxRunningKeys` keys, and a body fits a
    /// `UInt32` length. The receiver also bounds frames (`PeerFrameDecoder.maxFrameBytes`), so
    /// payloads must stay within the job payload limit.
    public static func encode(_ message: PeerMessage, into buffer: inout [UInt8]) {
        let start = buffer.count
        appendInteger(UInt32(0), to: &buffer)
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
        case hello = 1, forward, dispatch, result, refused, declined, running, spawn, retire, spawnRefused
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
        }
    }

    private static func errorCode(wire: UInt8) -> ClientErrorCode? {
        switch wire {
        case 1: .noService
        case 2: .tooLarge
        case 3: .badRequest
        case 4: .busy
        case 5: .unavailable
        default: nil
        }
    }

    // MARK: - Encoding

    private static func appendBody(_ message: PeerMessage, to buffer: inout [UInt8]) {
        switch message {
        case .hello(let sender, let address):
            buffer.append(MessageType.hello.rawValue)
            buffer.append(version)
            appendInteger(sender.high, to: &buffer)
            appendInteger(sender.low, to: &buffer)
            appendAddress(address, to: &buffer)
        case .forward(let ticket):
            buffer.append(MessageType.forward.rawValue)
            appendTicket(ticket, to: &buffer)
        case .dispatch(let epoch, let ticket):
            buffer.append(MessageType.dispatch.rawValue)
            appendInteger(epoch, to: &buffer)
            appendTicket(ticket, to: &buffer)
        case .result(let epoch, let service, let key, let outcome):
            buffer.append(MessageType.result.rawValue)
            appendInteger(epoch, to: &buffer)
            appendName(service.value, to: &buffer)
            appendName(key.value, to: &buffer)
            switch outcome {
            case .succeeded(let result):
                buffer.append(succeeded)
                appendBlob(result, to: &buffer)
            case .failed(let reason):
                buffer.append(failed)
                appendText(reason, to: &buffer)
            }
        case .refused(let service, let key, let code, let message):
            buffer.append(MessageType.refused.rawValue)
            appendName(service.value, to: &buffer)
            appendName(key.value, to: &buffer)
            buffer.append(wireCode(code))
            appendText(message, to: &buffer)
        case .declined(let epoch, let service, let key, let reason):
            buffer.append(MessageType.declined.rawValue)
            appendInteger(epoch, to: &buffer)
            appendName(service.value, to: &buffer)
            appendName(key.value, to: &buffer)
            appendText(reason, to: &buffer)
        case .running(let epoch, let service, let keys):
            precondition(keys.count <= maxRunningKeys, "over \(maxRunningKeys) keys in one running frame")
            buffer.append(MessageType.running.rawValue)
            appendInteger(epoch, to: &buffer)
            appendName(service.value, to: &buffer)
            appendInteger(UInt16(keys.count), to: &buffer)
            for key in keys { appendName(key.value, to: &buffer) }
        case .spawn(let service, let reason):
            buffer.append(MessageType.spawn.rawValue)
            appendName(service.value, to: &buffer)
            appendText(reason, to: &buffer)
        case .retire(let reason):
            buffer.append(MessageType.retire.rawValue)
            appendText(reason, to: &buffer)
        case .spawnRefused(let service, let reason):
            buffer.append(MessageType.spawnRefused.rawValue)
            appendName(service.value, to: &buffer)
            appendText(reason, to: &buffer)
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
        case .running(_, _, let keys): return fixed + keys.count * (1 + JobKey.maxLength)
        case .spawn(_, let reason), .retire(let reason), .spawnRefused(_, let reason): return fixed + min(reason.utf8.count, maxTextBytes)
        }
    }

    private static func appendTicket(_ ticket: JobTicket, to buffer: inout [UInt8]) {
        appendName(ticket.service.value, to: &buffer)
        appendName(ticket.key.value, to: &buffer)
        appendAddress(ticket.entry, to: &buffer)
        appendBlob(ticket.payload, to: &buffer)
    }

    private static func appendInteger<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }

    private static func appendAddress(_ address: NodeAddress, to buffer: inout [UInt8]) {
        switch address.host {
        case .ipv4(let host):
            buffer.append(4)
            appendInteger(host, to: &buffer)
        case .ipv6(let high, let low):
            buffer.append(6)
            appendInteger(high, to: &buffer)
            appendInteger(low, to: &buffer)
        }
        appendInteger(address.port, to: &buffer)
    }

    /// A service name or job key: at most 64 bytes by construction.
    private static func appendName(_ name: String, to buffer: inout [UInt8]) {
        let utf8 = name.utf8
        buffer.append(UInt8(truncatingIfNeeded: utf8.count))
        buffer.append(contentsOf: utf8)
    }

    private static func appendBlob(_ bytes: [UInt8], to buffer: inout [UInt8]) {
        precondition(bytes.count <= Int(UInt32.max), "blob over 4 GiB")
        appendInteger(UInt32(truncatingIfNeeded: bytes.count), to: &buffer)
        buffer.append(contentsOf: bytes)
    }

    /// At most `maxTextBytes` of `text`, cut before a UTF-8 continuation byte so the cut text is valid.
    private static func appendText(_ text: String, to buffer: inout [UInt8]) {
        let utf8 = text.utf8
        var end = utf8.endIndex
        if utf8.count > maxTextBytes {
            end = utf8.index(utf8.startIndex, offsetBy: maxTextBytes)
            while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        }
        let kept = utf8[..<end]
        appendInteger(UInt16(truncatingIfNeeded: kept.count), to: &buffer)
        buffer.append(contentsOf: kept)
    }

    // MARK: - Decoding

    /// Decodes one frame body (the bytes after the length prefix). `serviceCache` holds the last
    /// service name decoded on this connection, so a repeated name is not validated again.
    static func decodeBody(
        _ body: ArraySlice<UInt8>, serviceCache: inout ServiceName?
    ) throws(PeerDecodingError) -> PeerMessage {
        var reader = PeerBodyReader(body)
        let typeByte = try reader.byte("message type")
        guard let type = MessageType(rawValue: typeByte) else { throw .unknownType(typeByte) }
        let message: PeerMessage
        switch type {
        case .hello:
            let version = try reader.byte("version")
            guard version == Self.version else { throw .unsupportedVersion(version) }
            let sender = NodeID(high: try reader.integer(UInt64.self, "sender"), low: try reader.integer(UInt64.self, "sender"))
            message = .hello(sender: sender, address: try reader.address("address"))
        case .forward:
            message = .forward(try reader.ticket(serviceCache: &serviceCache))
        case .dispatch:
            let epoch = try reader.integer(UInt64.self, "epoch")
            message = .dispatch(epoch: epoch, ticket: try reader.ticket(serviceCache: &serviceCache))
        case .result:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            let tag = try reader.byte("outcome")
            let outcome: JobOutcome
            switch tag {
            case succeeded: outcome = .succeeded(try reader.blob("result"))
            case failed: outcome = .failed(try reader.text("failure reason"))
            default: throw .badOutcome(tag)
            }
            message = .result(epoch: epoch, service: service, key: key, outcome: outcome)
        case .refused:
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            let wire = try reader.byte("error code")
            guard let code = errorCode(wire: wire) else { throw .badErrorCode(wire) }
            message = .refused(service: service, key: key, code: code, message: try reader.text("message"))
        case .declined:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let key = try reader.key()
            message = .declined(epoch: epoch, service: service, key: key, reason: try reader.text("reason"))
        case .running:
            let epoch = try reader.integer(UInt64.self, "epoch")
            let service = try reader.service(cache: &serviceCache)
            let count = Int(try reader.integer(UInt16.self, "key count"))
            guard count <= maxRunningKeys else { throw .tooManyKeys(count) }
            var keys: [JobKey] = []
            // Each key takes at least two bytes: do not reserve for keys the frame cannot hold.
            keys.reserveCapacity(min(count, reader.remaining / 2))
            for _ in 0..<count { keys.append(try reader.key()) }
            message = .running(epoch: epoch, service: service, keys: keys)
        case .spawn:
            let service = try reader.service(cache: &serviceCache)
            message = .spawn(service: service, reason: try reader.text("reason"))
        case .retire:
            message = .retire(reason: try reader.text("reason"))
        case .spawnRefused:
            let service = try reader.service(cache: &serviceCache)
            message = .spawnRefused(service: service, reason: try reader.text("reason"))
        }
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        return message
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

/// Reads big-endian fields of one frame body, throwing `truncated` instead of reading past its end.
/// Works on a slice of the decoder's buffer, so nothing is copied but the fields themselves.
private struct PeerBodyReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - offset }

    mutating func byte(_ field: String) throws(PeerDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ field: String) throws(PeerDecodingError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(field: field) }
        var value = T.zero
        for index in offset..<(offset + size) { value = value << 8 | T(bytes[index]) }
        offset += size
        return value
    }

    /// The next `count` bytes, sharing the buffer's storage.
    mutating func slice(_ count: Int, _ field: String) throws(PeerDecodingError) -> ArraySlice<UInt8> {
        guard count <= remaining else { throw .truncated(field: field) }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    mutating func blob(_ field: String) throws(PeerDecodingError) -> [UInt8] {
        let count = Int(try integer(UInt32.self, field))
        return Array(try slice(count, field))
    }

    mutating func text(_ field: String) throws(PeerDecodingError) -> String {
        let count = Int(try integer(UInt16.self, field))
        guard count <= PeerMessageCodec.maxTextBytes else { throw .textTooLong(field: field, length: count) }
        guard let text = String(validating: try slice(count, field), as: UTF8.self) else { throw .badText(field: field) }
        return text
    }

    mutating func service(cache: inout ServiceName?) throws(PeerDecodingError) -> ServiceName {
        let bytes = try slice(Int(try byte("service length")), "service")
        if let cached = cache, cached.value.utf8.withContiguousStorageIfAvailable({ utf8 in
            bytes.withUnsafeBufferPointer { utf8.elementsEqual($0) }
        }) ?? cached.value.utf8.elementsEqual(bytes) {
            return cached
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .badService("not UTF-8") }
        do {
            let service = try ServiceName(text)
            cache = service
            return service
        } catch {
            throw .badService(error.description)
        }
    }

    mutating func key() throws(PeerDecodingError) -> JobKey {
        let bytes = try slice(Int(try byte("key length")), "key")
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

    mutating func address(_ field: String) throws(PeerDecodingError) -> NodeAddress {
        let family = try byte(field)
        let host: NodeAddress.Host
        switch family {
        case 4: host = .ipv4(try integer(UInt32.self, field))
        case 6: host = .ipv6(high: try integer(UInt64.self, field), low: try integer(UInt64.self, field))
        default: throw .badAddressFamily(family)
        }
        return NodeAddress(host: host, port: try integer(UInt16.self, field))
    }

    mutating func ticket(serviceCache: inout ServiceName?) throws(PeerDecodingError) -> JobTicket {
        let service = try service(cache: &serviceCache)
        let key = try key()
        let entry = try address("entry")
        return JobTicket(service: service, key: key, entry: entry, payload: try blob("payload"))
    }
}
