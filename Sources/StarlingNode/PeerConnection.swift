import Crypto
import StarlingCore
import StarlingUV

/// An inbound job-plane connection from another Starling process. Its first frame must be a
/// `hello` naming the sender; a connection that breaks the framing is closed and counted.
///
/// A sealed connection (`sealedAcceptor`) first runs the acceptor's side of `PeerHandshake`,
/// within `PeerHandshake.timeoutMs`, then opens each record and decodes the frames of its
/// plaintext; a connection whose handshake or any record fails is closed and counted by reason.
/// Loop-confined.
final class PeerConnection {
    private let stream: TCPStream
    private var decoder = PeerFrameDecoder()
    /// The sender's address, once its hello arrived.
    private(set) var peer: NodeAddress?
    private let onMessage: (PeerMessage, NodeAddress) -> Void
    private let onRejected: (String, String) -> Void
    private let onClosed: (PeerConnection) -> Void
    /// Called once the sender's hello named it (`peer` is set).
    var onHello: (PeerConnection) -> Void = { _ in }
    /// Called with the size of every read (for the byte counters of docs/METRICS.md).
    var onBytesRead: (Int) -> Void = { _ in }
    private var isClosed = false
    /// Where a sealed connection's keys come from (read at each step, so a reload counts at once).
    private let secrets: NodeSecrets?
    /// How the bytes that arrive are read.
    private enum Reading {
        /// Frames as they come (an open cluster).
        case plain
        /// A sealed connection before its opener has proved the key.
        case handshaking(PeerAcceptorHandshake)
        /// A sealed connection once it has: records, opened with its session's key.
        case sealed(PeerRecordOpener, provenWith: SymmetricKey)
    }
    private var reading: Reading
    /// A sealed connection's deadline for its handshake.
    private var handshakeTimer: Timer?
    /// Plaintext opened from records, reused between reads.
    private var opened: [UInt8] = []

    init(
        stream: TCPStream, sealedWith secrets: NodeSecrets? = nil, onMessage: @escaping (PeerMessage, NodeAddress) -> Void,
        onRejected: @escaping (String, String) -> Void, onClosed: @escaping (PeerConnection) -> Void
    ) {
        self.stream = stream
        self.secrets = secrets
        self.onMessage = onMessage
        self.onRejected = onRejected
        self.onClosed = onClosed
        reading = secrets == nil ? .plain : .handshaking(PeerAcceptorHandshake())
    }

    /// The cluster key this sealed connection was proved with (set once this side answered the
    /// hello); nil for a plain one.
    var clusterKey: SymmetricKey? {
        switch reading {
        case .plain: nil
        case .handshaking(let handshake): handshake.clusterKey
        case .sealed(_, let key): key
        }
    }

    private var isHandshaking: Bool {
        if case .handshaking = reading { true } else { false }
    }

    /// Starts reading, with the bytes already read while telling peers from clients.
    func start(initialBytes: [UInt8]) {
        do {
            try stream.startReading { [self] event in
                switch event {
                case .bytes(let bytes):
                    onBytesRead(bytes.count)
                    consume(bytes)
                case .endOfFile, .failed:
                    if isHandshaking {
                        onRejected("peer_handshake_incomplete", "\(remote): a sealed peer connection closed during its handshake")
                    }
                    close()
                }
            }
            if isHandshaking {
                let timer = try Timer(loop: stream.loop)
                handshakeTimer = timer
                try timer.start(afterMs: PeerHandshake.timeoutMs) { [unowned self] in
                    guard isHandshaking else { return }
                    onRejected(
                        "peer_handshake_timeout",
                        "\(remote): no sealed-link handshake within \(PeerHandshake.timeoutMs) ms")
                    close()
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
        handshakeTimer?.close()
        handshakeTimer = nil
        stream.close()
        onClosed(self)
    }

    private var remote: String {
        peer?.description ?? (try? stream.peerAddress).map { "\($0)" } ?? "unknown peer"
    }

    private func consume(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        do throws(PeerSealError) {
            switch reading {
            case .plain: decode(bytes)
            case .handshaking(let handshake): try shake(handshake, bytes)
            case .sealed: try consumeRecords(bytes)
            }
        } catch {
            onRejected(error.reason, "\(remote): \(error)")
            close()
        }
    }

    /// The acceptor's side of the handshake; the bytes after the opener's proof are records.
    private func shake(_ handshake: PeerAcceptorHandshake, _ bytes: [UInt8]) throws(PeerSealError) {
        guard let keys = secrets?.clusterKeys else {
            throw PeerSealError(.handshakeFailed, "this process has no cluster key")
        }
        var handshake = handshake
        let step = try handshake.receive(bytes, keys: keys)
        reading = .handshaking(handshake)
        if !step.reply.isEmpty {
            do {
                try stream.write(bytes: step.reply)
            } catch {
                close()
                return
            }
        }
        guard let session = step.session else { return }
        handshakeTimer?.close()
        handshakeTimer = nil
        reading = .sealed(session.opener, provenWith: session.clusterKey)
        if !step.rest.isEmpty { try consumeRecords(step.rest) }
    }

    private func consumeRecords(_ bytes: [UInt8]) throws(PeerSealError) {
        guard case .sealed(var records, let key) = reading else { return }
        // Taken out while it opens, so that its buffer is not shared (and copied) on the way.
        reading = .plain
        defer { reading = .sealed(records, provenWith: key) }
        opened.removeAll(keepingCapacity: true)
        try records.open(bytes, into: &opened)
        decode(opened)
        if opened.capacity > 256 * 1024 { opened = [] }
    }

    private func decode(_ bytes: [UInt8]) {
        guard !isClosed, !bytes.isEmpty else { return }
        decoder.append(bytes)
        do {
            while !isClosed, let message = try decoder.next() {
                if case .hello(_, let address) = message {
                    let isFirst = peer == nil
                    peer = address
                    if isFirst { onHello(self) }
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
