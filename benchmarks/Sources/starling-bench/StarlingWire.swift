/// Jobs over Starling's client protocol (docs/PROTOCOL.md) straight on a socket, without
/// `StarlingClient`: `SUBMIT <service> <key> <length>\r\n<payload>\r\n`, answers `OK`/`FAIL`
/// (with a body) or `ERR` (one line), matched by key. The key names the slot and the job's
/// sequence number, so an answer for an earlier job of the slot shows as stray. No failover:
/// for the raw-client comparison of `echo` and `latency` only.
struct StarlingWire: LoadWire {
    let service: String
    /// Unique per connection, so that no key repeats within the workers' 60 s answer cache.
    let keyPrefix: String
    private let prefixBytes: [UInt8]

    init(service: String) {
        self.service = service
        keyPrefix = "b" + String(UInt64.random(in: 0...UInt64.max), radix: 36) + "-"
        prefixBytes = Array(keyPrefix.utf8)
    }

    mutating func appendSubmit(slot: Int, id: Int, sequence: UInt64, payload: [UInt8], to out: inout [UInt8]) {
        out.append(contentsOf: "SUBMIT \(service) \(keyPrefix)\(slot)-\(sequence) \(payload.count)\r\n".utf8)
        out.append(contentsOf: payload)
        out.append(contentsOf: [0x0D, 0x0A])
    }

    mutating func nextEvent(_ socket: LoopbackSocket) throws(WireError) -> WireEvent? {
        try socket.parse { buffer, offset throws(WireError) in try Self.parse(buffer, offset: &offset, prefix: prefixBytes) }
    }

    mutating func forget(slot: Int) {}

    mutating func reset() {}

    /// The longest header line a worker sends (docs/PROTOCOL.md: 1024 bytes, line end not counted).
    private static let maxLineBytes = 1_026

    private static func parse(_ buffer: [UInt8], offset: inout Int, prefix: [UInt8]) throws(WireError) -> WireEvent? {
        guard let newline = buffer[offset...].prefix(maxLineBytes).firstIndex(of: 0x0A) else {
            if buffer.count - offset >= maxLineBytes { throw WireError("answer line longer than \(maxLineBytes) bytes") }
            return nil
        }
        let lineEnd = newline > offset && buffer[newline - 1] == 0x0D ? newline - 1 : newline
        let fields = buffer[offset..<lineEnd].split(separator: 0x20, maxSplits: 3)
        guard let word = fields.first else {
            offset = newline + 1
            return .nothing  // a blank line
        }
        switch String(decoding: word, as: UTF8.self) {
        case "PONG":
            offset = newline + 1
            return .nothing
        case "ERR":
            guard fields.count >= 3 else { throw WireError("malformed ERR line") }
            offset = newline + 1
            return event(key: fields[1], prefix: prefix, .failed("ERR \(String(decoding: fields[2], as: UTF8.self))"))
        case "OK", "FAIL":
            guard fields.count == 3, let length = Int(String(decoding: fields[2], as: UTF8.self)), length >= 0 else {
                throw WireError("malformed answer line '\(String(decoding: buffer[offset..<lineEnd].prefix(80), as: UTF8.self))'")
            }
            let bodyStart = newline + 1
            // The body, then a line end (\r\n or \n).
            guard buffer.count >= bodyStart + length + 1 else { return nil }
            var after = bodyStart + length
            if buffer[after] == 0x0D {
                guard buffer.count >= after + 2 else { return nil }
                after += 1
            }
            guard buffer[after] == 0x0A else { throw WireError("answer body not followed by a line end") }
            offset = after + 1
            let body = buffer[bodyStart..<bodyStart + length]
            let outcome: WireOutcome = word.first == UInt8(ascii: "O")
                ? .ok(body) : .failed("FAIL: \(String(decoding: body.prefix(120), as: UTF8.self))")
            return event(key: fields[1], prefix: prefix, outcome)
        default:
            throw WireError("unexpected answer '\(String(decoding: buffer[offset..<lineEnd].prefix(80), as: UTF8.self))'")
        }
    }

    /// The slot and sequence named by a key `<prefix><slot>-<sequence>`; stray if it is not ours.
    private static func event(key: ArraySlice<UInt8>, prefix: [UInt8], _ outcome: WireOutcome) -> WireEvent {
        guard key.starts(with: prefix) else { return .stray }
        let rest = key.dropFirst(prefix.count)
        guard let dash = rest.firstIndex(of: UInt8(ascii: "-")),
              let slot = Int(String(decoding: rest[..<dash], as: UTF8.self)),
              let sequence = UInt64(String(decoding: rest[(dash + 1)...], as: UTF8.self))
        else { return .stray }
        return .answered(slot: slot, sequence: sequence, outcome)
    }
}
