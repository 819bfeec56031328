import StarlingCore

/// Jobs over Starling's client protocol (docs/PROTOCOL.md) straight on a socket, without
/// `StarlingClient` but with its framing (`ClientRequest.encode`, `ClientResponseDecoder`):
/// `SUBMIT`, answers `OK`/`FAIL`/`ERR` matched by key. The key names the slot and the job's
/// sequence number, so an answer for an earlier job of the slot shows as stray. No failover:
/// for the raw-client comparison of `echo` and `latency` only.
struct StarlingWire: LoadWire {
    let service: ServiceName
    /// Unique per connection, so that no key repeats within the workers' 60 s answer cache: five
    /// random letters. With the slot and the base-36 sequence a key stays within the 15 bytes a
    /// `String` holds inline, as `StarlingClient`'s generated keys do.
    let keyPrefix: String
    private var decoder = ClientResponseDecoder()

    init(service: String) {
        guard let service = try? ServiceName(service) else { preconditionFailure("bad service name '\(service)'") }
        self.service = service
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        keyPrefix = String((0..<5).map { _ in letters.randomElement()! })
    }

    mutating func appendSubmit(slot: Int, id: Int, sequence: UInt64, payload: [UInt8], to out: inout [UInt8]) {
        // The prefix is letters, slot and sequence are numbers: always a key.
        guard let key = try? JobKey("\(keyPrefix)\(slot)-\(String(sequence, radix: 36))") else { preconditionFailure("bench key") }
        ClientRequest.submit(service: service, key: key, payload: payload).encode(into: &out)
    }

    mutating func nextEvent(_ socket: LoopbackSocket) throws(WireError) -> WireEvent? {
        try socket.parse { buffer, offset throws(WireError) -> Void? in
            decoder.append(buffer[offset...])
            offset = buffer.count
            return nil
        }
        guard let item = decoder.next() else { return nil }
        switch item {
        case .response(.ok(let key, let result)):
            return event(key: key, .ok(result[...]))
        case .response(.fail(let key, let text)):
            return event(key: key, .failed("FAIL: \(String(decoding: text.prefix(120), as: UTF8.self))"))
        case .response(.error(let key, let code, _)):
            guard let key else { return .stray }
            return event(key: key, .failed("ERR \(code.rawValue)"))
        case .response(.pong), .response(.welcome), .response(.status), .response(.shards):
            return .nothing
        case .error(let failure):
            throw WireError("\(failure)")
        }
    }

    mutating func forget(slot: Int) {}

    mutating func reset() {
        decoder = ClientResponseDecoder()
    }

    /// The slot and sequence named by a key `<prefix><slot>-<sequence>`; stray if it is not ours.
    private func event(key: JobKey, _ outcome: WireOutcome) -> WireEvent {
        guard key.value.hasPrefix(keyPrefix) else { return .stray }
        let rest = key.value.dropFirst(keyPrefix.count)
        guard let dash = rest.firstIndex(of: "-"), let slot = Int(rest[..<dash]),
              let sequence = UInt64(rest[rest.index(after: dash)...], radix: 36)
        else { return .stray }
        return .answered(slot: slot, sequence: sequence, outcome)
    }
}
