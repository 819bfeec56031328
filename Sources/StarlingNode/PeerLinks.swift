import Crypto
import StarlingCore
import StarlingUV

/// Outbound job-plane connections, one per peer, opened on first use (docs/HANDBOOK.md, "peer link").
///
/// Frames are appended to a per-peer buffer. `flush()`, which the worker calls after handling each
/// event, schedules one write per peer once the loop iteration's callbacks are done
/// (`EventLoop.soon`), so every frame of a burst of events goes in one syscall per peer.
/// A link connects with up to five racing attempts (`ConnectAttempts`); one that cannot be made
/// keeps its frames and retries with backoff. Only a connection that was open and broke reports
/// `onLinkLost`, because only then may frames have been lost; it then reconnects at once while the
/// peer is wanted, even with nothing to send, since the new connection's hello tells the peer the
/// old one is gone (so it sends again what it waits on). Every socket has `TCP_USER_TIMEOUT` set to
/// the stall timeout: a live link whose data goes unacknowledged that long (heavy loss, a dead
/// host) is aborted by the kernel, not left to retransmission timeouts that back off to minutes.
/// And its first retransmission waits `minimumRetransmitUs`, not Linux's 200 ms: a lost segment
/// of a job costs a fraction of that, and three in a row 350 ms instead of 1.4 s. A link whose
/// oldest segment has waited `stalledAfterUs` in retransmission timeouts is not left to back off
/// further (the next waits would be 400 ms, then 800, and the stall timeout aborts it anyway): the
/// stall watch breaks it at once, and a new connection starts again at the minimum timeout
/// (docs/HANDBOOK.md, "peer link").
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
    /// The smallest retransmission timeout of a link (`TCP_RTO_MIN_US`). The kernel still waits
    /// at least the smoothed round trip plus this, so a far or jittery peer's timeout grows with
    /// its round trip; on a near one a lost segment goes again after 50 ms, then 100, 200, ...
    static let minimumRetransmitUs = 50_000
    /// Time spent in retransmission timeouts in a row after which a link counts as stalled: at
    /// the minimum timeout, three (50 + 100 + 200 ms). Three losses in a row of a segment or its
    /// acknowledgement are rare but on a very lossy path, where a fresh connection does better;
    /// a link whose timeouts are longer (a far or jittery peer) is broken after as long a wait.
    static let stalledAfterUs = 350_000
    /// How often open links are checked for a stall.
    static let stallWatchMs: UInt64 = 100

    private let loop: EventLoop
    /// `TCP_USER_TIMEOUT` of every link: how long sent data may go unacknowledged.
    private let stallTimeoutMs: Int
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
    /// Links opened to a peer that had one before (docs/METRICS.md).
    private(set) var reconnects: UInt64 = 0
    /// Bytes handed to the kernel on every link, seals and handshakes included.
    private(set) var bytesSent: UInt64 = 0
    /// Links open now.
    var openLinks: Int { links.values.count { $0.state == .open } }
    /// Set once the kernel refused `minimumRetransmitUs` (it is too old), so it is said once.
    private var minimumRetransmitRefused = false
    /// Checks the open links every `stallWatchMs` while any was written to and may have data
    /// unacknowledged.
    private var stallWatch: Timer?
    private var stallWatchFailed = false

    init(
        loop: EventLoop, sender: NodeID, address: NodeAddress, secrets: NodeSecrets, rejections: RejectionRecorder,
        stallTimeoutMs: Int = Int(ConnectionLimits.defaultPeerStallTimeoutMs)
    ) {
        self.loop = loop
        self.stallTimeoutMs = stallTimeoutMs
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
            case .connecting, .waitingToRetry: break
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
        stallWatch?.close()
        stallWatch = nil
    }

    // MARK: Internals

    /// Starts the race of connect attempts; another joins every `ConnectAttempts.staggerMs`.
    private func connect(_ link: OutboundLink) {
        link.state = .connecting
        startAttempt(link)
        guard link.state == .connecting else { return }
        do {
            let timer = try link.attempts.staggerTimer ?? Timer(loop: loop)
            link.attempts.staggerTimer = timer
            try timer.start(afterMs: ConnectAttempts.staggerMs, repeatMs: ConnectAttempts.staggerMs) {
                [weak self, weak link] in
                guard let self, let link, link.state == .connecting, link.attempts.canStartAnother else { return }
                startAttempt(link)
            }
        } catch {
            // No timer: the attempt in flight races alone.
        }
    }

    private func startAttempt(_ link: OutboundLink) {
        let address = link.peer.socketAddress
        let stream: TCPStream
        do {
            stream = try TCPStream(loop: loop, socketFor: address)
        } catch {
            attemptFailed(link, nil, "\(error)")
            return
        }
        let attempt = ConnectAttempt(stream: stream)
        link.attempts.add(attempt)
        try? stream.setNoDelay(true)
        do {
            // Before connecting: it also bounds the SYN retries.
            try stream.setUserTimeout(milliseconds: stallTimeoutMs)
        } catch {
            onProblem("peer_stall_timeout", "the link to \(link.peer) cannot detect stalls: \(error)")
        }
        if !minimumRetransmitRefused {
            do {
                try stream.setMinimumRetransmitTimeout(microseconds: Self.minimumRetransmitUs)
            } catch {
                minimumRetransmitRefused = true
                onProblem(
                    "peer_rto_min",
                    "peer links keep the system's minimum retransmission timeout (this kernel refuses TCP_RTO_MIN_US: \(error))")
            }
        }
        do {
            try stream.connect(to: address) { [weak self, weak link, weak attempt] error in
                guard let self, let link, let attempt, link.attempts.contains(attempt) else { return }
                if let error {
                    attemptFailed(link, attempt, "\(error)")
                } else if secrets.clusterKeys != nil {
                    startHandshake(link, attempt)
                } else {
                    won(link, attempt)
                    // Reading only tells us when the peer goes away; nothing comes this way.
                    do throws(UVError) {
                        try stream.startReading { [weak self, weak link] event in
                            guard let self, let link, link.stream === stream else { return }
                            if case .failed(let error) = event { broke(link, error) } else if case .endOfFile = event { broke(link) }
                        }
                    } catch {
                        broke(link, error)
                        return
                    }
                    write(link)
                }
            }
        } catch {
            attemptFailed(link, attempt, "\(error)")
        }
    }

    /// Sends the opener's hello and waits for the peer's proof; frames wait in the buffer.
    private func startHandshake(_ link: OutboundLink, _ attempt: ConnectAttempt) {
        let stream = attempt.stream
        var handshake = PeerOpenerHandshake()
        do {
            try stream.startReading { [weak self, weak link, weak attempt] event in
                guard let self, let link else { return }
                // Once open, nothing comes this way (answers go on the peer's own link).
                guard let attempt, link.attempts.contains(attempt) else {
                    guard link.stream === stream else { return }
                    if case .failed(let error) = event { broke(link, error) } else if case .endOfFile = event { broke(link) }
                    return
                }
                switch event {
                case .bytes(let bytes):
                    guard let keys = secrets.clusterKeys else { return }
                    do throws(PeerSealError) {
                        guard let done = try handshake.receive(bytes, keys: keys) else { return }
                        handshakeSucceeded(link, attempt, proof: done.proof, session: done.session)
                    } catch {
                        rejections.record(error.reason, detail: "peer \(link.peer): \(error)", level: .warning)
                        attemptFailed(link, attempt, "sealed-link handshake failed: \(error)")
                    }
                case .endOfFile, .failed:
                    attemptFailed(
                        link, attempt, "the peer closed the connection during the sealed-link handshake "
                            + "(it has no cluster key, or does not accept ours)")
                }
            }
            try stream.write(bytes: handshake.hello)
            let timer = try Timer(loop: loop)
            attempt.handshakeTimer = timer
            try timer.start(afterMs: PeerHandshake.timeoutMs) { [weak self, weak link, weak attempt] in
                guard let self, let link, let attempt, link.attempts.contains(attempt) else { return }
                rejections.record(
                    "peer_handshake_timeout", detail: "peer \(link.peer): no sealed-link proof within \(PeerHandshake.timeoutMs) ms",
                    level: .warning)
                attemptFailed(link, attempt, "no sealed-link proof within \(PeerHandshake.timeoutMs) ms")
            }
        } catch {
            attemptFailed(link, attempt, "\(error)")
        }
    }

    /// The peer proved the key: the hello and the waiting frames go out sealed, after our proof.
    private func handshakeSucceeded(_ link: OutboundLink, _ attempt: ConnectAttempt, proof: [UInt8], session: PeerSession) {
        won(link, attempt)
        link.clusterKey = session.clusterKey
        link.sealer = session.sealer
        write(link, after: proof)
    }

    /// The first attempt to complete becomes the link; the others are closed.
    private func won(_ link: OutboundLink, _ attempt: ConnectAttempt) {
        link.attempts.take(attempt)
        link.stream = attempt.stream
        link.state = .open
        link.openedAtMs = loop.now
        if link.hasOpened { reconnects += 1 }
        link.hasOpened = true
        link.buffer.insert(contentsOf: hello, at: 0)
    }

    /// Runs the stall watch while some link may have data unacknowledged: idle links cost no wakeups.
    private func watchForStalls() {
        guard stallWatch?.isActive != true, !stallWatchFailed else { return }
        do {
            let timer = try stallWatch ?? Timer(loop: loop)
            stallWatch = timer
            try timer.start(afterMs: Self.stallWatchMs, repeatMs: Self.stallWatchMs) { [weak self] in self?.breakStalledLinks() }
        } catch {
            // No watch: a stalled link is still aborted by its `TCP_USER_TIMEOUT`.
            stallWatchFailed = true
            onProblem("peer_stall_watch", "peer links are not watched for stalls: \(error); the stall timeout still aborts them")
        }
    }

    /// Breaks every open link whose oldest data has waited `stalledAfterUs` in retransmission timeouts.
    /// Only links written to since they were last seen with everything acknowledged are asked.
    private func breakStalledLinks() {
        let stalled = links.values.filter { link in
            guard link.state == .open, link.mayHaveUnacknowledged, let state = try? link.stream?.retransmissions() else {
                return false
            }
            if state.unacknowledgedSegments == 0 { link.mayHaveUnacknowledged = false }
            return state.waitedThroughTimeoutsUs >= Self.stalledAfterUs
        }
        for link in stalled {
            onProblem(
                "peer_link_stalled",
                "peer link to \(link.peer) stalled: nothing acknowledged through \(Self.stalledAfterUs / 1000) ms of retransmissions; reconnecting")
            broke(link, stalled: true)
        }
        if !links.values.contains(where: { $0.state == .open && $0.mayHaveUnacknowledged }) { stallWatch?.stop() }
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

    /// One attempt failed (nil: it could not even start): the link fails once none is left.
    private func attemptFailed(_ link: OutboundLink, _ attempt: ConnectAttempt?, _ why: String) {
        if let attempt { link.attempts.fail(attempt) }
        guard link.state == .connecting, link.attempts.isEmpty else { return }
        connectFailed(link, why)
    }

    private func connectFailed(_ link: OutboundLink, _ why: String) {
        link.attempts.stopAll()
        guard isWanted(link.peer) else {
            // Gone from the record: what waits for it is answered through other paths.
            onProblem("peer_gone", "dropping \(link.buffer.count) bytes for \(link.peer): cannot connect (\(why)) and it left the record")
            forget(link.peer)
            return
        }
        onProblem("peer_connect", "cannot connect to \(link.peer): \(why); retrying in \(link.retryMs) ms")
        retryLater(link)
    }

    /// Connects again after `retryMs`, which doubles up to `maxRetryMs`.
    private func retryLater(_ link: OutboundLink) {
        link.state = .waitingToRetry
        do {
            let timer = try link.retryTimer ?? Timer(loop: loop)
            link.retryTimer = timer
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
        var failure: UVError?
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
            bytesSent &+= UInt64(bytes.count)
            link.mayHaveUnacknowledged = true
            watchForStalls()
            try stream.write(bytes: bytes) { [weak self, weak link] error in
                if let error, let self, let link, link.stream === stream { broke(link, error) }
            }
        } catch {
            failure = error
        }
        // The stream copied the bytes: empty the buffer in place, keeping a small one's storage.
        if link.buffer.capacity > 256 * 1024 {
            link.buffer = []
        } else {
            link.buffer.removeAll(keepingCapacity: true)
        }
        if sealed.capacity > 256 * 1024 { sealed = [] }
        // After emptying: the core may queue frames again in answer to the loss.
        if let failure { broke(link, failure) }
    }

    private func markDirty(_ link: OutboundLink) {
        guard !link.isDirty else { return }
        link.isDirty = true
        dirty.append(link)
    }

    /// An open link failed: tell the core frames may be lost, and connect again at once while the
    /// peer is wanted. A link that breaks within `maxRetryMs` of opening (a peer that accepts and
    /// closes) waits with backoff instead, so it cannot spin; one that stalled (`stalled`, or the
    /// kernel's stall timeout) does not: a stall takes hundreds of milliseconds to show, and on a
    /// lossy path the backoff would only add its wait to every reconnect.
    private func broke(_ link: OutboundLink, _ error: UVError? = nil, stalled: Bool = false) {
        guard link.state == .open else { return }
        let timedOut = error?.name == "ETIMEDOUT"
        if timedOut {
            onProblem("peer_link_stalled", "peer link to \(link.peer) stalled: nothing acknowledged for \(stallTimeoutMs) ms; reconnecting")
        }
        link.resetSession()
        link.stream?.close()
        link.stream = nil
        link.state = .idle
        let wasSteady = stalled || timedOut || loop.now - link.openedAtMs >= Self.maxRetryMs
        onLinkLost(link.peer)
        guard links[link.peer] === link, link.state == .idle else { return }
        if isWanted(link.peer) {
            if wasSteady {
                link.retryMs = Self.firstRetryMs
                markDirty(link)
            } else {
                onProblem("peer_link_flapping", "the link to \(link.peer) broke soon after opening; reconnecting in \(link.retryMs) ms")
                retryLater(link)
            }
        } else if !link.buffer.isEmpty {
            // Frames queued by the core in answer to the loss go out on a new connection.
            markDirty(link)
        }
        flush()
    }
}

/// One peer's outbound connection and the frames waiting for it.
private final class OutboundLink {
    enum State { case idle, connecting, open, waitingToRetry }

    let peer: NodeAddress
    var state = State.idle
    /// While connecting: the attempts racing; a sealed one is handshaking once connected.
    let attempts = ConnectAttempts()
    /// The open connection.
    var stream: TCPStream?
    var openedAtMs: UInt64 = 0
    /// Whether it was ever open: opening again is a reconnect.
    var hasOpened = false
    var buffer: [UInt8] = []
    /// Bytes for the peer not yet handed to the kernel: the buffer and the stream's write queue.
    var unsentBytes: Int { buffer.count + (stream?.writeQueueSize ?? 0) }
    /// Whether it is in `PeerLinks.dirty`.
    var isDirty = false
    /// Written to since the stall watch last saw everything on it acknowledged.
    var mayHaveUnacknowledged = false
    var retryTimer: Timer?
    var retryMs = PeerLinks.firstRetryMs
    /// A sealed link, once open: the cluster key it was proved with, and its records' sealer.
    var clusterKey: SymmetricKey?
    var sealer: PeerRecordSealer?

    init(peer: NodeAddress) {
        self.peer = peer
    }

    /// Forgets the sealed session (the connection is going).
    func resetSession() {
        clusterKey = nil
        sealer = nil
    }

    func close() {
        resetSession()
        attempts.close()
        stream?.close()
        stream = nil
        retryTimer?.close()
        retryTimer = nil
        state = .idle
    }
}
