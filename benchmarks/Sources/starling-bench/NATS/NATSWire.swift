/// Jobs as NATS requests: each job is `PUB echo <inbox>.<slot>.<sequence>` and its answer the
/// `MSG` a worker publishes to that reply subject. Each connection subscribes to its own inbox,
/// `_INBOX.<random>.>`, so the reply subject names the slot and the job's sequence number and
/// an answer for an earlier job of the slot shows as stray. NATS core has no acknowledgement: a
/// request whose worker dies is lost without a word, and only the bench's timeout sees it.
struct NATSWire: LoadWire {
    let subject: [UInt8]
    /// `_INBOX.<random>.`, unique per connection (made again on each reconnect).
    private var inbox: [UInt8] = []
    private static let inboxSid = 1

    init(subject: String) {
        precondition(NATSCodec.isToken(subject), "bad NATS subject '\(subject)'")
        self.subject = Array(subject.utf8)
    }

    mutating func handshake(_ socket: LoopbackSocket) throws(WireError) {
        let prefix = "_INBOX." + String(UInt64.random(in: 0...UInt64.max), radix: 36) + "."
        inbox = Array(prefix.utf8)
        try NATSHandshake.open(socket, name: "starling-bench client",
                               subscriptions: [.init(subject: prefix + ">", queue: nil, sid: Self.inboxSid)])
    }

    mutating func appendSubmit(slot: Int, id: Int, sequence: UInt64, payload: [UInt8], to out: inout [UInt8]) {
        let reply = inbox + Array("\(slot).\(sequence)".utf8)
        NATSCodec.appendPublish(subject: subject, replyTo: reply, payload: payload, to: &out)
    }

    mutating func nextEvent(_ socket: LoopbackSocket) throws(WireError) -> WireEvent? {
        guard let operation = try socket.bufferedNATSOperation() else { return nil }
        switch operation {
        case .message(let message):
            guard let (slot, sequence) = job(named: message.subject) else { return .stray }
            if let headers = message.headers {
                // Only a status reply (e.g. 503, no responders) would carry headers here.
                let status = headers.prefix { $0 != 0x0D && $0 != 0x0A }
                return .answered(slot: slot, sequence: sequence,
                                 .failed("reply with headers: \(String(decoding: status.prefix(60), as: UTF8.self))"))
            }
            return .answered(slot: slot, sequence: sequence, .ok(message.payload))
        case .ping:
            var pong: [UInt8] = []
            NATSCodec.appendPong(to: &pong)
            try socket.send(pong)
            return .nothing
        case .error(let text):
            throw WireError("-ERR from nats-server: \(text)")
        case .info, .pong, .ok:
            return .nothing
        }
    }

    /// Nothing maps a reply to a slot but its subject, which names the job.
    mutating func forget(slot: Int) {}

    mutating func reset() { inbox = [] }

    /// The slot and sequence named by `<inbox><slot>.<sequence>`; nil if it is not ours.
    private func job(named subject: ArraySlice<UInt8>) -> (Int, UInt64)? {
        guard !inbox.isEmpty, subject.count > inbox.count, subject.starts(with: inbox) else { return nil }
        let rest = subject.dropFirst(inbox.count)
        guard let dot = rest.firstIndex(of: UInt8(ascii: ".")),
              let slot = Int(String(decoding: rest[..<dot], as: UTF8.self)),
              let sequence = UInt64(String(decoding: rest[(dot + 1)...], as: UTF8.self))
        else { return nil }
        return (slot, sequence)
    }
}
