import StarlingCore
import StarlingUV

/// The job-plane connections other processes opened to this one (their `PeerLinks`): each frame
/// goes to `onMessage`, and a connection that closes is reported to `onClosed` with its sender,
/// since frames from it may have been lost on the way.
///
/// With cluster keys only sealed connections are taken (`PeerHandshake`); a plain one is closed and
/// counted (`peer_unsealed`). Without keys only plain ones are, and a sealed one is counted
/// (`peer_sealed_without_key`). A key reload closes the connections proved with a key no longer
/// accepted.
///
/// A peer keeps one link to this process: a connection whose hello names a peer that already has
/// one **supersedes** it. The peer made it because its old one broke, perhaps without a word (a
/// stall aborted by `TCP_USER_TIMEOUT` sends no RST): the older connection is closed, and its
/// `onClosed` makes the core ask again for what it waits on from that peer. Loop-confined.
final class InboundPeerConnections {
    private let rejections: RejectionRecorder
    private let secrets: NodeSecrets
    private var connections: Set<PeerConnection> = []
    var onMessage: (PeerMessage, NodeAddress) -> Void = { _, _ in }
    /// Called with the sender, once known (its hello arrived), when its connection closes.
    var onClosed: (NodeAddress) -> Void = { _ in }
    /// Called with the sender when its new connection supersedes an older one (for the log).
    var onSuperseded: (NodeAddress) -> Void = { _ in }
    /// Bytes read from peers' connections, handshakes and seals included.
    private(set) var bytesReceived: UInt64 = 0

    init(secrets: NodeSecrets, rejections: RejectionRecorder) {
        self.secrets = secrets
        self.rejections = rejections
        secrets.onClusterKeysChanged.append { [weak self] in self?.clusterKeysChanged() }
    }

    /// A new plain peer connection, with the bytes already read while routing it.
    func accept(_ stream: TCPStream, initialBytes: [UInt8]) {
        guard secrets.clusterKeys == nil else {
            rejections.record(
                "peer_unsealed",
                detail: "\(Self.remote(stream)): a plain peer connection reached a process with a cluster key: closed "
                    + "(is that process started without --cluster-key-file?)",
                level: .notice)
            stream.close()
            return
        }
        start(PeerConnection(
            stream: stream, onMessage: { [unowned self] message, peer in onMessage(message, peer) },
            onRejected: { [unowned self] reason, detail in rejections.record(reason, detail: detail, level: .notice) },
            onClosed: { [unowned self] connection in closed(connection) }), initialBytes: initialBytes)
    }

    /// A new sealed peer connection (it started with `PeerHandshake.magic`).
    func acceptSealed(_ stream: TCPStream, initialBytes: [UInt8]) {
        guard secrets.clusterKeys != nil else {
            rejections.record(
                "peer_sealed_without_key",
                detail: "\(Self.remote(stream)): a peer opened a sealed link, but this process has no cluster key "
                    + "(--cluster-key-file): closed",
                level: .warning)
            stream.close()
            return
        }
        start(PeerConnection(
            stream: stream, sealedWith: secrets, onMessage: { [unowned self] message, peer in onMessage(message, peer) },
            onRejected: { [unowned self] reason, detail in rejections.record(reason, detail: detail, level: .notice) },
            onClosed: { [unowned self] connection in closed(connection) }), initialBytes: initialBytes)
    }

    func closeAll() {
        for connection in connections { connection.close() }
    }

    private func start(_ connection: PeerConnection, initialBytes: [UInt8]) {
        connections.insert(connection)
        connection.onHello = { [unowned self] in supersede(by: $0) }
        connection.onBytesRead = { [unowned self] in bytesReceived &+= UInt64($0) }
        bytesReceived &+= UInt64(initialBytes.count)
        connection.start(initialBytes: initialBytes)
    }

    private func supersede(by connection: PeerConnection) {
        guard let peer = connection.peer else { return }
        let older = connections.filter { $0 !== connection && $0.peer == peer }
        guard !older.isEmpty else { return }
        onSuperseded(peer)
        for old in older { old.close() }
    }

    private func closed(_ connection: PeerConnection) {
        connections.remove(connection)
        if let peer = connection.peer { onClosed(peer) }
    }

    /// After a key reload: a connection proved with a key that is no longer accepted is closed
    /// (its sender reconnects with a key that is; the core asks again for what was in flight).
    private func clusterKeysChanged() {
        guard let keys = secrets.clusterKeys else { return }
        let stale = connections.filter { connection in
            guard let key = connection.clusterKey else { return false }
            return !keys.all.contains(key)
        }
        for connection in stale {
            rejections.record(
                "peer_key_retired",
                detail: "closing an inbound peer link from \(connection.peer.map(\.description) ?? "a peer") "
                    + "proved with a cluster key no longer accepted",
                level: .notice)
            connection.close()
        }
    }

    private static func remote(_ stream: TCPStream) -> String {
        (try? stream.peerAddress).map { "\($0)" } ?? "unknown peer"
    }
}
