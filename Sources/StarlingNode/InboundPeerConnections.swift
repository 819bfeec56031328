import StarlingCore
import StarlingUV

/// The job-plane connections other processes opened to this one (their `PeerLinks`): each frame
/// goes to `onMessage`, and a connection that closes is reported to `onClosed` with its sender,
/// since frames from it may have been lost on the way. Loop-confined.
final class InboundPeerConnections {
    private let rejections: RejectionRecorder
    private let secrets: NodeSecrets
    private var connections: Set<PeerConnection> = []
    var onMessage: (PeerMessage, NodeAddress) -> Void = { _, _ in }
    /// Called with the sender, once known (its hello arrived), when its connection closes.
    var onClosed: (NodeAddress) -> Void = { _ in }

    init(secrets: NodeSecrets, rejections: RejectionRecorder) {
        self.secrets = secrets
        self.rejections = rejections
    }

    /// A new peer connection, with the bytes already read while routing it.
    func accept(_ stream: TCPStream, initialBytes: [UInt8]) {
        let connection = PeerConnection(
            stream: stream,
            onMessage: { [unowned self] message, peer in onMessage(message, peer) },
            onRejected: { [unowned self] reason, detail in rejections.record(reason, detail: detail, level: .notice) },
            onClosed: { [unowned self] connection in
                connections.remove(connection)
                if let peer = connection.peer { onClosed(peer) }
            })
        connections.insert(connection)
        connection.start(initialBytes: initialBytes)
    }

    func closeAll() {
        for connection in connections { connection.close() }
    }
}
