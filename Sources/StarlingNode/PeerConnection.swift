import StarlingCore
import StarlingUV

/// An inbound job-plane connection from another Starling process. Its first frame must be a
/// `hello` naming the sender; a connection that breaks the framing is closed and counted.
/// Loop-confined.
final class PeerConnection {
    private let stream: TCPStream
    private var decoder = PeerFrameDecoder()
    /// The sender's address, once its hello arrived.
    private(set) var peer: NodeAddress?
    private let onMessage: (PeerMessage, NodeAddress) -> Void
    private let onRejected: (String, String) -> Void
    private let onClosed: (PeerConnection) -> Void
    private var isClosed = false

    init(
        stream: TCPStream, onMessage: @escaping (PeerMessage, NodeAddress) -> Void,
        onRejected: @escaping (String, String) -> Void, onClosed: @escaping (PeerConnection) -> Void
    ) {
        self.stream = stream
        self.onMessage = onMessage
        self.onRejected = onRejected
        self.onClosed = onClosed
    }

    /// Starts reading, with the bytes already read while telling peers from clients.
    func start(initialBytes: [UInt8]) {
        do {
            try stream.startReading { [self] event in
                switch event {
                case .bytes(let bytes): consume(bytes)
                case .endOfFile, .failed: close()
                }
            }
        } catch {
            close()
            return
        }
        consume(initialBytes)
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        stream.close()
        onClosed(self)
    }

    private func consume(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        decoder.append(bytes)
        do {
            while !isClosed, let message = try decoder.next() {
                if case .hello(_, let address) = message {
                    peer = address
                } else if let peer {
                    onMessage(message, peer)
                } else {
                    onRejected("peer_no_hello", "a peer connection sent a frame before its hello")
                    close()
                }
            }
        } catch {
            onRejected("peer_\(error.reason)", "peer \(peer.map(\.description) ?? "unknown"): \(error)")
            close()
        }
    }
}

extension PeerConnection: Hashable {
    static func == (lhs: PeerConnection, rhs: PeerConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
