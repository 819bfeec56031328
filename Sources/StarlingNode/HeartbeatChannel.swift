import Crypto
import StarlingCore
import StarlingUV

/// The UDP side of a process: heartbeats in and out (docs/HANDBOOK.md, "Membership").
///
/// Without a cluster key each datagram is a plain `HeartbeatCodec` heartbeat. With one
/// (`NodeSecrets.clusterKeys`, read at each use so a SIGHUP takes effect at once) every datagram
/// is sealed (`HeartbeatSeal`) and a received one must open, be addressed to this process and be
/// fresh (`HeartbeatFreshness`): an unknown sender is challenged before anything it sent is
/// believed (docs/SECURITY.md, "Sealed heartbeats"). A heartbeat that passes goes to
/// `onHeartbeat`; anything else is counted as rejected input by reason and dropped, so the core
/// never sees it. It decides nothing about membership: what a heartbeat means and whom to send one
/// is `Membership`'s. Loop-confined.
final class HeartbeatChannel {
    private let udp: UDPSocket
    private let loop: EventLoop
    private let secrets: NodeSecrets
    private let rejections: RejectionRecorder
    /// Local failures (send, receive): logged, never counted as rejected input.
    private let ioProblems: RejectionRecorder
    private let selfID: NodeID
    private let selfAddress: NodeAddress
    private var freshness: HeartbeatFreshness
    private var random = SystemRandomNumberGenerator()
    /// The seal counter: +1 for every sealed datagram; never repeats in this process.
    private var sealCounter: UInt64 = 0
    /// Senders' keys derived from the cluster keys (it notices when those change).
    private var senderKeys = HeartbeatSenderKeys()
    /// Service names heard before, so each datagram need not validate them again (bounded).
    private var knownServices: [ServiceName] = []
    /// What this process last said, sealed again (with a new counter) to answer a challenge.
    private var latest: Heartbeat?
    /// Set by `close(sendingLast:)`: every heartbeat sent from then on is a goodbye.
    private var isSayingGoodbye = false
    private var goodbyesInFlight = 0

    init(
        udp: UDPSocket, loop: EventLoop, selfID: NodeID, selfAddress: NodeAddress, intervalMs: Int64,
        secrets: NodeSecrets, rejections: RejectionRecorder, ioProblems: RejectionRecorder
    ) {
        self.udp = udp
        self.loop = loop
        self.selfID = selfID
        self.selfAddress = selfAddress
        self.secrets = secrets
        self.rejections = rejections
        self.ioProblems = ioProblems
        freshness = HeartbeatFreshness(config: .init(intervalMs: intervalMs))
    }

    /// Starts receiving; each heartbeat that passes goes to `onHeartbeat`.
    func start(onHeartbeat: @escaping (Heartbeat) -> Void) throws(UVError) {
        try udp.startReceiving { [unowned self] event in received(event, onHeartbeat: onHeartbeat) }
    }

    func send(_ heartbeat: Heartbeat, to targets: [NodeAddress]) {
        latest = heartbeat
        let bytes = HeartbeatCodec.encode(heartbeat)
        guard let keys = secrets.clusterKeys else {
            for target in targets { send(bytes, to: target) }
            return
        }
        for target in targets {
            send(seal(.heartbeat(body: bytes, echo: nil), to: target, with: keys), to: target)
        }
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

    private var nowMs: Int64 { Int64(clamping: loop.now) }

    private func received(_ event: UDPReceiveEvent, onHeartbeat: (Heartbeat) -> Void) {
        switch event {
        case .datagram(let bytes, let from):
            if let keys = secrets.clusterKeys {
                receivedSealed(bytes, from: from, keys: keys, onHeartbeat: onHeartbeat)
            } else if HeartbeatSeal.isSealed(bytes) {
                rejections.record(
                    "heartbeat_sealed_without_key",
                    detail: "a sealed heartbeat (\(bytes.count) bytes from \(from)), but this process has no cluster key "
                        + "(--cluster-key-file): it cannot join a keyed cluster",
                    level: .warning)
            } else {
                switch HeartbeatCodec.decode(bytes, services: &knownServices) {
                case .success(let heartbeat):
                    onHeartbeat(heartbeat)
                case .failure(let error):
                    rejections.record(error.reason, detail: "\(error) (\(bytes.count) bytes from \(from))", level: .notice)
                }
            }
        case .truncated(let from):
            rejections.record("oversized", detail: "datagram larger than the receive buffer from \(from)", level: .notice)
        case .failed(let error):
            ioProblems.record("receive", detail: "\(error)", level: .warning)
        }
    }

    /// Opens, checks and judges one datagram of a keyed process; only a fresh, verified heartbeat
    /// reaches `onHeartbeat`.
    private func receivedSealed(
        _ bytes: [UInt8], from: SocketAddress, keys: ClusterKeys, onHeartbeat: (Heartbeat) -> Void
    ) {
        let datagram: SealedDatagram
        switch HeartbeatSeal.open(bytes, keys: keys.all, senderKeys: &senderKeys) {
        case .success(let opened): datagram = opened
        case .failure(let error):
            rejections.record(error.reason, detail: "\(error) (from \(from))", level: .notice)
            return
        }
        guard datagram.sender != selfID else {
            // This process never sends to itself: a copy of one of its own datagrams.
            rejections.record("heartbeat_replayed", detail: "one of this process's own datagrams, from \(from)", level: .notice)
            return
        }
        switch datagram.content {
        case .challenge(let nonce, let target, let replyTo):
            answer(challenge: nonce, target: target, replyTo: replyTo, datagram: datagram, from: from, keys: keys)
        case .heartbeat(let body, let echo):
            let heartbeat: Heartbeat
            switch HeartbeatCodec.decode(body, services: &knownServices) {
            case .success(let decoded): heartbeat = decoded
            case .failure(let error):
                rejections.record(error.reason, detail: "sealed: \(error) (from \(from))", level: .notice)
                return
            }
            guard heartbeat.sender == datagram.sender else {
                rejections.record(
                    "heartbeat_sender_mismatch",
                    detail: "sealed by \(datagram.sender) but the heartbeat names \(heartbeat.sender) (from \(from))",
                    level: .notice)
                return
            }
            let verdict = freshness.heartbeat(
                from: datagram.sender, counter: datagram.counter, echo: echo, claimedAddress: heartbeat.address,
                addressedToMe: datagram.destination == selfAddress, nowMs: nowMs, using: &random)
            switch verdict {
            case .deliver, .verified:
                onHeartbeat(heartbeat)
            case .replayed:
                rejections.record(
                    "heartbeat_replayed",
                    detail: "counter \(datagram.counter) of \(datagram.sender) was seen before (from \(from))", level: .notice)
            case .misaddressed:
                rejections.record(
                    "heartbeat_misaddressed",
                    detail: "\(datagram.sender) sent it to \(datagram.destination), not here (from \(from))", level: .notice)
            case .challenge(let nonce, let address):
                rejections.record(
                    "heartbeat_challenged",
                    detail: "\(datagram.sender) is not verified here: challenged at \(address) (from \(from))", level: .info)
                sendChallenge(nonce, to: datagram.sender, at: address, keys: keys)
            case .awaitingAnswer:
                rejections.record(
                    "heartbeat_unverified",
                    detail: "\(datagram.sender) has not answered its challenge yet (from \(from))", level: .debug)
            case .challengeBudgetSpent:
                rejections.record(
                    "heartbeat_challenge_budget",
                    detail: "\(datagram.sender) is not verified and this interval's challenges are spent (from \(from))",
                    level: .notice)
            }
        }
    }

    /// Answers a challenge as `HeartbeatFreshness` rules: the latest heartbeat sealed again (new
    /// counter, the nonce echoed), and a challenge back to a challenger unknown here.
    private func answer(
        challenge nonce: ChallengeNonce, target: NodeID, replyTo: NodeAddress, datagram: SealedDatagram,
        from: SocketAddress, keys: ClusterKeys
    ) {
        guard let latest else {
            rejections.record(
                "heartbeat_challenge_unanswerable", detail: "a challenge before this process sent any heartbeat (from \(from))",
                level: .info)
            return
        }
        switch freshness.challenged(
            by: datagram.sender, target: target, destination: datagram.destination, replyTo: replyTo, me: selfID,
            myAddress: selfAddress, nowMs: nowMs, using: &random)
        {
        case .misdirected:
            rejections.record(
                "heartbeat_challenge_misdirected",
                detail: "a challenge for \(target) at \(datagram.destination), not this process (from \(from))", level: .notice)
        case .rateLimited:
            rejections.record(
                "heartbeat_challenge_rate_limited", detail: "answered \(replyTo) less than the gap ago (from \(from))",
                level: .info)
        case .answer(let replyTo, let challengeBack):
            send(seal(.heartbeat(body: HeartbeatCodec.encode(latest), echo: nonce), to: replyTo, with: keys), to: replyTo)
            if let challengeBack { sendChallenge(challengeBack, to: datagram.sender, at: replyTo, keys: keys) }
        }
    }

    private func sendChallenge(_ nonce: ChallengeNonce, to sender: NodeID, at address: NodeAddress, keys: ClusterKeys) {
        send(seal(.challenge(nonce: nonce, target: sender, replyTo: selfAddress), to: address, with: keys), to: address)
    }

    private func seal(_ content: SealedDatagram.Content, to target: NodeAddress, with keys: ClusterKeys) -> [UInt8] {
        sealCounter += 1
        return HeartbeatSeal.seal(
            SealedDatagram(sender: selfID, counter: sealCounter, destination: target, content: content), with: keys.all,
            senderKeys: &senderKeys)
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
