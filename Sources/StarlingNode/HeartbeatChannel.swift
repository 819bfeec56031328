import StarlingCore
import StarlingUV

/// The UDP side of a process: heartbeats in and out (docs/HANDBOOK.md, "Membership").
///
/// Each datagram is decoded with `HeartbeatCodec`; a heartbeat goes to `onHeartbeat`, anything
/// else is counted as rejected input and dropped. It decides nothing about membership: what a
/// heartbeat means and whom to send one is `Membership`'s. Loop-confined.
final class HeartbeatChannel {
    private let udp: UDPSocket
    private let secrets: NodeSecrets
    private let rejections: RejectionRecorder
    /// Local failures (send, receive): logged, never counted as rejected input.
    private let ioProblems: RejectionRecorder
    /// Set by `close(sendingLast:)`: every heartbeat sent from then on is a goodbye.
    private var isSayingGoodbye = false
    private var goodbyesInFlight = 0

    init(udp: UDPSocket, secrets: NodeSecrets, rejections: RejectionRecorder, ioProblems: RejectionRecorder) {
        self.udp = udp
        self.secrets = secrets
        self.rejections = rejections
        self.ioProblems = ioProblems
    }

    /// Starts receiving; each well-formed heartbeat goes to `onHeartbeat`.
    func start(onHeartbeat: @escaping (Heartbeat) -> Void) throws(UVError) {
        try udp.startReceiving { [unowned self] event in received(event, onHeartbeat: onHeartbeat) }
    }

    func send(_ heartbeat: Heartbeat, to targets: [NodeAddress]) {
        let bytes = HeartbeatCodec.encode(heartbeat)
        for target in targets { send(bytes, to: target) }
    }

    /// Lets `goodbyes` send the last heartbeats (the leave), then closes the socket once each one
    /// has left: closing at once would cancel them, and peers would wait for the failure timeout.
    func close(sendingLast goodbyes: () -> Void) {
        isSayingGoodbye = true
        goodbyes()
        if goodbyesInFlight == 0 { udp.close() }
    }

    /// Closes at once (start-up failure: there is no one to say goodbye to).
    func close() {
        udp.close()
    }

    private func received(_ event: UDPReceiveEvent, onHeartbeat: (Heartbeat) -> Void) {
        switch event {
        case .datagram(let bytes, let from):
            switch HeartbeatCodec.decode(bytes) {
            case .success(let heartbeat):
                onHeartbeat(heartbeat)
            case .failure(let error):
                rejections.record(error.reason, detail: "\(error) (\(bytes.count) bytes from \(from))", level: .notice)
            }
        case .truncated(let from):
            rejections.record("oversized", detail: "datagram larger than the receive buffer from \(from)", level: .notice)
        case .failed(let error):
            ioProblems.record("receive", detail: "\(error)", level: .warning)
        }
    }

    private func send(_ bytes: [UInt8], to target: NodeAddress) {
        do {
            if isSayingGoodbye {
                goodbyesInFlight += 1
                try udp.send(bytes: bytes, to: target.socketAddress) { [unowned self] _ in
                    goodbyesInFlight -= 1
                    if goodbyesInFlight == 0 { udp.close() }
                }
            } else {
                try udp.send(bytes: bytes, to: target.socketAddress)
            }
        } catch {
            if isSayingGoodbye { goodbyesInFlight -= 1 }
            ioProblems.record("send", detail: "heartbeat to \(target): \(error)", level: .debug)
        }
    }
}
