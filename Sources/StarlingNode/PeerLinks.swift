import StarlingCore
import StarlingUV

/// Outbound job-plane connections, one per peer, opened on first use (DESIGN.md §3).
///
/// Frames are appended to a per-peer buffer and written in one write per peer by `flush()`, which
/// the worker calls after handling each event, so a burst of jobs costs one syscall per peer.
/// A connection that cannot be made keeps its frames and retries with backoff; only a connection
/// that was open and broke reports `onLinkLost`, because only then may frames have been lost.
/// Loop-confined.
final class PeerLinks {
    /// Bytes buffered for one peer before its frames are dropped (the core forwards again on loss).
    static let maxBufferedBytes = 64 << 20
    static let firstRetryMs: UInt64 = 20
    static let maxRetryMs: UInt64 = 1_000

    private let loop: EventLoop
    private let hello: [UInt8]
    private var links: [NodeAddress: OutboundLink] = [:]
    private var dirty: Set<NodeAddress> = []
    /// Called when an open link broke: frames sent on it may not have arrived.
    var onLinkLost: (NodeAddress) -> Void = { _ in }
    /// Whether a peer that cannot be reached is still worth retrying (it is in the record).
    var isWanted: (NodeAddress) -> Bool = { _ in true }
    /// Called for conditions worth a log line (connect failures, dropped frames).
    var onProblem: (String, String) -> Void = { _, _ in }

    init(loop: EventLoop, sender: NodeID, address: NodeAddress) {
        self.loop = loop
        hello = PeerMessageCodec.encode(.hello(sender: sender, address: address))
    }

    func send(_ message: PeerMessage, to peer: NodeAddress) {
        let link = links[peer] ?? {
            let link = OutboundLink(peer: peer)
            links[peer] = link
            return link
        }()
        guard link.buffer.count < Self.maxBufferedBytes else {
            onProblem("peer_buffer_full", "dropping a frame to \(peer): \(Self.maxBufferedBytes) bytes already wait")
            return
        }
        PeerMessageCodec.encode(message, into: &link.buffer)
        dirty.insert(peer)
    }

    /// Writes what each peer's buffer holds; connects where needed.
    func flush() {
        for peer in dirty {
            guard let link = links[peer] else { continue }
            switch link.state {
            case .idle: connect(link)
            case .open: write(link)
            case .connecting, .waitingToRetry: break
            }
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// The peer left the record: drop its link and whatever waits for it.
    func forget(_ peer: NodeAddress) {
        links.removeValue(forKey: peer)?.close()
        dirty.remove(peer)
    }

    func closeAll() {
        for link in links.values { link.close() }
        links.removeAll()
        dirty.removeAll()
    }

    // MARK: Internals

    private func connect(_ link: OutboundLink) {
        do {
            let stream = try TCPStream(loop: loop)
            link.stream = stream
            link.state = .connecting
            try? stream.setNoDelay(true)
            try stream.connect(to: link.peer.socketAddress) { [weak self, weak link] error in
                guard let self, let link, link.stream === stream else { return }
                if let error {
                    connectFailed(link, "\(error)")
                } else {
                    link.state = .open
                    link.retryMs = Self.firstRetryMs
                    // Reading only tells us when the peer goes away; nothing comes this way.
                    try? stream.startReading { [weak self, weak link] event in
                        guard case .bytes = event else {
                            if let self, let link { broke(link) }
                            return
                        }
                    }
                    link.buffer.insert(contentsOf: hello, at: 0)
                    write(link)
                }
            }
        } catch {
            connectFailed(link, "\(error)")
        }
    }

    private func connectFailed(_ link: OutboundLink, _ why: String) {
        link.stream?.close()
        link.stream = nil
        guard isWanted(link.peer) else {
            // Gone from the record: what waits for it is answered through other paths.
            onProblem("peer_gone", "dropping \(link.buffer.count) bytes for \(link.peer): cannot connect (\(why)) and it left the record")
            forget(link.peer)
            return
        }
        onProblem("peer_connect", "cannot connect to \(link.peer): \(why); retrying in \(link.retryMs) ms")
        link.state = .waitingToRetry
        do {
            let timer: Timer
            if let existing = link.retryTimer {
                timer = existing
            } else {
                timer = try Timer(loop: loop)
                link.retryTimer = timer
            }
            try timer.start(afterMs: link.retryMs) { [weak self, weak link] in
                guard let self, let link, link.state == .waitingToRetry else { return }
                link.state = .idle
                connect(link)
            }
            link.retryMs = min(link.retryMs * 2, Self.maxRetryMs)
        } catch {
            link.state = .idle
        }
    }

    private func write(_ link: OutboundLink) {
        guard !link.buffer.isEmpty, let stream = link.stream else { return }
        let bytes = link.buffer
        link.buffer.removeAll(keepingCapacity: true)
        do {
            try stream.write(bytes: bytes) { [weak self, weak link] error in
                if error != nil, let self, let link, link.stream === stream { broke(link) }
            }
        } catch {
            broke(link)
        }
    }

    /// An open link failed: start over on the next frame, and tell the core frames may be lost.
    private func broke(_ link: OutboundLink) {
        guard link.state == .open else { return }
        link.stream?.close()
        link.stream = nil
        link.state = .idle
        onLinkLost(link.peer)
        // Frames queued by the core in answer to the loss go out on a new connection.
        if !link.buffer.isEmpty { dirty.insert(link.peer) }
        flush()
    }
}

/// One peer's outbound connection and the frames waiting for it.
private final class OutboundLink {
    enum State { case idle, connecting, open, waitingToRetry }

    let peer: NodeAddress
    var state = State.idle
    var stream: TCPStream?
    var buffer: [UInt8] = []
    var retryTimer: Timer?
    var retryMs = PeerLinks.firstRetryMs

    init(peer: NodeAddress) {
        self.peer = peer
    }

    func close() {
        stream?.close()
        stream = nil
        retryTimer?.close()
        retryTimer = nil
        state = .idle
    }
}
