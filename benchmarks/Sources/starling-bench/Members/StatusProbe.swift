import StarlingCore

/// `STATUS` (docs/PROTOCOL.md) asked of one worker over a blocking socket kept open between
/// calls: the members scenario polls up to 150 workers from one thread, which a `StarlingClient`
/// per worker (a loop thread each) would make a load of its own.
final class StatusProbe {
    let port: UInt16
    private var socket: LoopbackSocket?
    private var decoder = ClientResponseDecoder()

    init(port: UInt16) { self.port = port }

    /// The worker's record, or nil when it does not answer within `timeoutMs` (the connection is
    /// then dropped and made again at the next call).
    func status(timeoutMs: Int32 = 2_000) -> StatusReport? {
        do throws(WireError) {
            let socket: LoopbackSocket
            if let open = self.socket {
                socket = open
            } else {
                socket = try LoopbackSocket(port: port)
                self.socket = socket
            }
            try socket.send(ClientRequest.status.encode())
            let deadline = monotonicNs() + UInt64(timeoutMs) * 1_000_000
            while true {
                try socket.parse { buffer, offset throws(WireError) -> Void? in
                    decoder.append(buffer[offset...])
                    offset = buffer.count
                    return nil
                }
                while let item = decoder.next() {
                    switch item {
                    case .response(.status(let json)):
                        return try? StatusReport(json: json)
                    case .response:
                        continue
                    case .error(let failure):
                        throw WireError("\(failure)")
                    }
                }
                let now = monotonicNs()
                guard now < deadline else { throw WireError("no STATUS answer within \(timeoutMs) ms") }
                _ = try socket.fill(timeoutMs: Int32((deadline - now) / 1_000_000) + 1)
            }
        } catch {
            close()
            return nil
        }
    }

    func close() {
        socket?.close()
        socket = nil
        decoder = ClientResponseDecoder()
    }
}
