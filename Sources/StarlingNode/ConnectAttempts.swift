import StarlingUV

/// One connection attempt of a peer link: its stream and, on a sealed link, the handshake deadline.
final class ConnectAttempt {
    let stream: TCPStream
    var handshakeTimer: Timer?

    init(stream: TCPStream) {
        self.stream = stream
    }

    func close() {
        handshakeTimer?.close()
        handshakeTimer = nil
        stream.close()
    }
}

/// The attempts racing to open one peer link (docs/HANDBOOK.md, "peer link"). Linux sends a lost
/// SYN again only after 1 s, then 3 s, 7 s: under packet loss one attempt is slow, so while none
/// has completed (connected and, on a sealed link, proved the key) another starts every
/// `staggerMs`, at most `maxInFlight` at once. The first to complete becomes the link; one that
/// fails is only the link's failure once no other is left. Where each way loses 30 % of packets an
/// attempt gets its SYN and the answer through at once half the time: with three attempts 250 ms
/// apart one reconnect in eight still waited for a resent SYN (1 s), the lossy tail's largest
/// part; five attempts 150 ms apart leave one in thirty. On a sound network the first attempt
/// wins within a round trip and no other starts. Loop-confined.
final class ConnectAttempts {
    static let staggerMs: UInt64 = 150
    static let maxInFlight = 5

    private(set) var inFlight: [ConnectAttempt] = []
    /// Starts the next attempt every `staggerMs` while the link is connecting.
    var staggerTimer: Timer?

    var isEmpty: Bool { inFlight.isEmpty }
    var canStartAnother: Bool { inFlight.count < Self.maxInFlight }

    func add(_ attempt: ConnectAttempt) {
        inFlight.append(attempt)
    }

    func contains(_ attempt: ConnectAttempt) -> Bool {
        inFlight.contains { $0 === attempt }
    }

    /// Closes a failed attempt and forgets it.
    func fail(_ attempt: ConnectAttempt) {
        inFlight.removeAll { $0 === attempt }
        attempt.close()
    }

    /// The winner leaves the race with its stream open; the others are closed.
    func take(_ winner: ConnectAttempt) {
        staggerTimer?.stop()
        winner.handshakeTimer?.close()
        winner.handshakeTimer = nil
        for attempt in inFlight where attempt !== winner { attempt.close() }
        inFlight.removeAll()
    }

    /// Ends the race: every attempt is closed; the timer is kept for the next one.
    func stopAll() {
        staggerTimer?.stop()
        for attempt in inFlight { attempt.close() }
        inFlight.removeAll()
    }

    /// Closes everything, the timer too (the link is going).
    func close() {
        stopAll()
        staggerTimer?.close()
        staggerTimer = nil
    }
}
