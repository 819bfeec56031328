/// Opening a NATS connection: wait for the server's `INFO`, send `CONNECT`, the subscriptions
/// and a `PING`, and wait for its `PONG`. The server handles a connection's operations in order,
/// so the `PONG` proves the subscriptions are in place before the first job is published.
enum NATSHandshake {
    struct Subscription {
        var subject: String
        var queue: String?
        var sid: Int
    }

    static func open(_ socket: LoopbackSocket, name: String, subscriptions: [Subscription],
                     timeoutMs: Int32 = 5_000) throws(WireError) {
        let deadline = monotonicNs() + UInt64(timeoutMs) * 1_000_000
        func next(_ awaited: String) throws(WireError) -> NATSServerOperation {
            let now = monotonicNs()
            guard now < deadline,
                  let operation = try socket.receiveNATS(timeoutMs: Int32((deadline - now) / 1_000_000) + 1)
            else { throw WireError("no \(awaited) from nats-server within \(timeoutMs) ms") }
            if case .error(let text) = operation { throw WireError("-ERR from nats-server: \(text)") }
            return operation
        }
        guard case .info = try next("INFO") else { throw WireError("nats-server did not start with INFO") }
        var out: [UInt8] = []
        NATSCodec.appendConnect(name: name, to: &out)
        for subscription in subscriptions {
            NATSCodec.appendSubscribe(subject: subscription.subject, queue: subscription.queue, sid: subscription.sid, to: &out)
        }
        NATSCodec.appendPing(to: &out)
        try socket.send(out)
        while true {
            switch try next("PONG") {
            case .pong: return
            case .ping:
                out.removeAll(keepingCapacity: true)
                NATSCodec.appendPong(to: &out)
                try socket.send(out)
            case .message: throw WireError("MSG from nats-server before the handshake's PONG")
            case .info, .ok, .error: continue
            }
        }
    }
}
