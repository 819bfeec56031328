import Crypto
import StarlingCore
import StarlingUV

/// Outbound job-plane connections, one per peer, opened on first use (docs/HANDBOOK.md, "peer link").
///
/// Frames are appended to a per-peer buffer. `flush()`, which the worker calls after handling each
/// event, schedules one write per peer once the loop iteration's callbacks are done
/// (`EventLoop.soon`), so every frame of a burst of events goes in one syscall per peer.
/// A connection that cannot be made keeps its frames and retries with backoff; only a connection
/// that was open and broke reports `onLinkLost`, because only then may frames have been lost.
///
/// With cluster keys a link is sealed: once connected it runs the opener's side of
/// `PeerHandshake` (within `PeerHandshake.timeoutMs`) while its frames wait, then each write is
/// sealed as records (`PeerRecordSealer`). A handshake that fails is a failed connect: logged,
/// counted when the peer's proof was wrong, retried with backoff while the peer is wanted. A key
/// reload breaks the links proved with a key no longer accepted. Loop-confined.
final class PeerLinks {
    /// Bytes waiting for one peer (in its buffer, or written and not yet taken by the kernel)
    /// before its frames are dropped; each dropped frame is handed to `onFrameDropped`, so the
    /// core sends it again or places its job again.
    static let maxBufferedBytes = 64 << 20
    static let firstRetryMs: UInt64 = 20
    static let maxRetryMs: UInt64 = 1_000

    private let loop: EventLoop
    private let hello: [UInt8]
    private let secrets: NodeSecrets
    private let rejections: RejectionRecorder
    /// Reused for the records of each sealed write.
    private var sealed: [UInt8] = []
    private var links: [NodeAddress: OutboundLink] = [:]
    /// Links with frames to write (each once: `OutboundLink.isDirty`), without hashing per frame.
    private var dirty: [OutboundLink] = []
    /// The links `writeDirty` is going through (kept to reuse its storage).
    private var writing: [OutboundLink] = []
    private var isWriteScheduled = false
    /// Called when an open link broke: frames sent on it may not have arrived.
    var onLinkLost: (NodeAddress) -> Void = { _ in }
    /// Called with a frame that was not queued because its peer's buffer is full. It must not
    /// send on these links at once (the engine keeps it for its next tick).
    var onFrameDropped: (PeerMessage, NodeAddress) -> Void = { _, _ in }
    /// Whether a peer that cannot be reached is still worth retrying (it is in the record).
    var isWanted: (NodeAddress) -> Bool = { _ in true }
    /// Called for conditions worth a log line (connect failures, dropped frames).
    var onProblem: (String, String) -> Void = { _, _ in }

    init(loop: EventLoop, sender: NodeID, address: NodeAddress, secrets: NodeSecrets, rejections: RejectionRecorder) {
        self.loop = loop
        self.secrets = secrets
        self.rejections = rejections
        hello = PeerMessageCodec.encode(.hello(sender: sender, address: address))
        secrets.onClusterKeysChanged.append { [weak self] in self?.clusterKeysChanged() }
    }

    func send(_ message: PeerMessage, to peer: NodeAddress) {
        let link = links[peer] ?? {
            let link = OutboundLink(peer: peer)
            links[peer] = link
            return link
        }()
        // An open link's buffer is emptied into its stream at every write: what a slow or stalled
        // peer has not taken waits in the stream's write queue, and counts against the bound too.
        guard link.unsentBytes < Self.maxBufferedBytes else {
            onProblem("peer_buffer_full", "cannot queue a frame to \(peer): \(Self.maxBufferedBytes) bytes already wait; it goes again later")
            onFrameDropped(message, peer)
            return
        }
        let start = link.buffer.count
        PeerMessageCodec.encode(message, into: &link.buffer)
        if let refusal = PeerFrameLimits.refusal(ofFrame: link.buffer[start...]) {
            // The peer would refuse it and drop the link, and the core would ask for it again:
            // a frame over the limits is dropped here, once, and never handed back to be resent.
            // (The core keeps results within max_result_bytes, so this is a bug's backstop.)
            link.buffer.removeSubrange(start...)
            rejections.record("peer_frame_over_limit", detail: "not sending a frame to \(peer): \(refusal)", level: .error)
            return
        }
        markDirty(link)
    }

    /// Writes what each peer's buffer holds, connecting where needed, once this loop iteration's
    /// callbacks are done: frames sent until then go out with these.
    func flush() {
        guard !dirty.isEmpty, !isWriteScheduled else { return }
        isWriteScheduled = true
        loop.soon { [weak self] in
            guard let self else { return }
            isWriteScheduled = false
            writeDirty()
        }
    }

    /// Writes what each peer's buffer holds now; connects where needed.
    private func writeDirty() {
        // A link that breaks on write marks itself dirty again: it goes in the next round.
        swap(&dirty, &writing)
        for link in writing {
            link.isDirty = false
            // A link forgotten since it was marked is no longer ours to write.
            guard links[link.peer] === link else { continue }
            switch link.state {
            case .idle: connect(link)
            case .open: write(link)
            case .connecting, .handshaking, .waitingToRetry: break
            }
        }
        writing.removeAll(keepingCapacity: true)
    }

    /// The peer left the record: drop its link and whatever waits for it.
    func forget(_ peer: NodeAddress) {
        links.removeValue(forKey: peer)?.close()
    }

    /// Closes every link; what is buffered for an open link is handed to the kernel first, as far
    /// as it takes it at once (writes are deferred to the loop's idle phase, see `flush()`).
    func closeAll() {
        for link in dirty where link.state == .open && links[link.peer] === link { write(link) }
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
                } else if secrets.clusterKeys != nil {
                    startHandshake(link, on: stream)
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

    /// Sends the opener's hello and waits for the peer's proof; frames wait in the buffer.
    private func startHandshake(_ link: OutboundLink, on stream: TCPStream) {
        link.state = .handshaking
        var handshake = PeerOpenerHandshake()
        do {
            try stream.startReading { [weak self, weak link] event in
                guard let self, let link, link.stream === stream else { return }
                switch event {
                case .bytes(let bytes):
                    // Once open, nothing comes this way (answers go on the peer's own link).
                    guard link.state == .handshaking, let keys = secrets.clusterKeys else { return }
                    do throws(PeerSealError) {
                        guard let done = try handshake.receive(bytes, keys: keys) else { return }
                        handshakeSucceeded(link, proof: done.proof, session: done.session)
                    } catch {
                        rejections.record(error.reason, detail: "peer \(link.peer): \(error)", level: .warning)
                        connectFailed(link, "sealed-link handshake failed: \(error)")
                    }
                case .endOfFile, .failed:
                    if link.state == .handshaking {
                        connectFailed(
                            link, "the peer closed the connection during the sealed-link handshake "
                                + "(it has no cluster key, or does not accept ours)")
                    } else {
                        broke(link)
                    }
                }
            }
            try stream.write(bytes: handshake.hello)
            let timer = try link.handshakeTimer ?? Timer(loop: loop)
            link.handshakeTimer = timer
            try timer.start(afterMs: PeerHandshake.timeoutMs) { [weak self, weak link] in
                guard let self, let link, link.state == .handshaking, link.stream === stream else { return }
                rejections.record(
                    "peer_handshake_timeout", detail: "peer \(link.peer): no sealed-link proof within \(PeerHandshake.timeoutMs) ms",
                    level: .warning)
                connectFailed(link, "no sealed-link proof within \(PeerHandshake.timeoutMs) ms")
            }
        } catch {
            connectFailed(link, "\(error)")
        }
    }

    /// The peer proved the key: the hello and the waiting frames go out sealed, after our proof.
    private func handshakeSucceeded(_ link: OutboundLink, proof: [UInt8], session: PeerSession) {
        link.handshakeTimer?.stop()
        link.state = .open
        link.retryMs = Self.firstRetryMs
        link.clusterKey = session.clusterKey
        link.sealer = session.sealer
        link.buffer.insert(contentsOf: hello, at: 0)
        write(link, after: proof)
    }

    /// After a key reload: links proved with a key no longer accepted break (the core sends again
    /// what may have been lost) and reconnect with the keys now loaded.
    private func clusterKeysChanged() {
        guard let keys = secrets.clusterKeys else { return }
        let stale = links.values.filter { link in
            guard link.state == .open, let key = link.clusterKey else { return false }
            return !keys.all.contains(key)
        }
        for link in stale {
            onProblem("peer_key_retired", "closing the peer link to \(link.peer): it was proved with a cluster key no longer accepted")
            broke(link)
        }
    }

    private func connectFailed(_ link: OutboundLink, _ why: String) {
        link.resetSession()
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

    /// Writes the buffer: as it is, or sealed as records after `prefix` (the handshake's proof).
    private func write(_ link: OutboundLink, after prefix: [UInt8] = []) {
        guard !link.buffer.isEmpty || !prefix.isEmpty, let stream = link.stream else { return }
        var failed = false
        do {
            let bytes: [UInt8]
            if link.sealer != nil {
                sealed.removeAll(keepingCapacity: true)
                sealed.append(contentsOf: prefix)
                link.sealer!.seal(link.buffer, into: &sealed)
                bytes = sealed
            } else {
                bytes = link.buffer
            }
            try stream.write(bytes: bytes) { [weak self, weak link] error in
                if error != nil, let self, let link, link.stream === stream { broke(link) }
            }
        } catch {
            failed = true
        }
        // The stream copied the bytes: empty the buffer in place, keeping a small one's storage.
        if link.buffer.capacity > 256 * 1024 {
            link.buffer = []
        } else {
            link.buffer.removeAll(keepingCapacity: true)
        }
        if sealed.capacity > 256 * 1024 { sealed = [] }
        // After emptying: the core may queue frames again in answer to the loss.
        if failed { broke(link) }
    }

    private func markDirty(_ link: OutboundLink) {
        guard !link.isDirty else { return }
        link.isDirty = true
        dirty.append(link)
    }

    /// An open link failed: start over on the next frame, and tell the core frames may be lost.
    private func broke(_ link: OutboundLink) {
        guard link.state == .open else { return }
        link.resetSession()
        link.stream?.close()
        link.stream = nil
        link.state = .idle
        onLinkLost(link.peer)
        // Frames queued by the core in answer to the loss go out on a new connection.
        if !link.buffer.isEmpty { markDirty(link) }
        flush()
    }
}

/// One peer's outbound connection and the frames waiting for it.
private final class OutboundLink {
    enum State { case idle, connecting, handshaking, open, waitingToRetry }

    let peer: NodeAddress
    var state = State.idle
    var stream: TCPStream?
    var buffer: [UInt8] = []
    /// Bytes for the peer not yet handed to the kernel: the buffer and the stream's write queue.
    var unsentBytes: Int { buffer.count + (stream?.writeQueueSize ?? 0) }
    /// Whether it is in `PeerLinks.dirty`.
    var isDirty = false
    var retryTimer: Timer?
    var retryMs = PeerLinks.firstRetryMs
    /// A sealed link's handshake deadline.
    var handshakeTimer: Timer?
    /// A sealed link, once open: the cluster key it was proved with, and its records' sealer.
    var clusterKey: SymmetricKey?
    var sealer: PeerRecordSealer?

    init(peer: NodeAddress) {
        self.peer = peer
    }

    /// Forgets the sealed session (the connection is going).
    func resetSession() {
        handshakeTimer?.stop()
        clusterKey = nil
        sealer = nil
    }

    func close() {
        resetSession()
        stream?.close()
        stream = nil
        retryTimer?.close()
        retryTimer = nil
        handshakeTimer?.close()
        handshakeTimer = nil
        state = .idle
    }
}
