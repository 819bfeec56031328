/// Which authenticated heartbeats are fresh: replay protection that needs no synchronised clocks
/// (docs/SECURITY.md, "Sealed heartbeats"). Pure: the time is passed in and randomness injected;
/// the cryptography that authenticates what it judges is the shell's (`HeartbeatSeal`).
///
/// A sender is known by its identity, which is new at every process start, and every datagram it
/// seals carries its seal counter. A sender this process has **verified** is heard only with a
/// counter it has not accepted before (a window of 64 below the highest lets reordered datagrams
/// through, once each). An unknown sender is not believed at all: it is **challenged** with a
/// fresh random nonce at the address its heartbeat claims, and only a heartbeat that echoes that
/// nonce verifies it. So a datagram recorded earlier, replayed after its sender died or from its
/// own address, is never delivered: a dead sender cannot answer, and a recording holds no answer
/// to a nonce drawn after it was made.
///
/// Every table is bounded: one pending challenge per sender (re-sent at most once per interval,
/// expiring after `pendingLifetimeMs`), at most `maxPending` of them and `challengesPerInterval`
/// sent per interval; at most `maxVerified` verified senders (the least recently heard is
/// forgotten: a live one is simply challenged again); answers to challenges at most once per
/// `answerGapMs` per reply address, `maxAnswered` addresses remembered.
public struct HeartbeatFreshness {
    public struct Config {
        public var intervalMs: Int64
        public var maxVerified = 1_024
        public var maxPending = 256
        public var challengesPerInterval = 64
        public var maxAnswered = 1_024
        public var pendingLifetimeMs: Int64
        public var answerGapMs: Int64

        public init(intervalMs: Int64) {
            precondition(intervalMs >= 1)
            self.intervalMs = intervalMs
            pendingLifetimeMs = max(1_000, 10 * intervalMs)
            answerGapMs = max(1, intervalMs / 2)
        }
    }

    /// What to do with an authenticated heartbeat.
    public enum Verdict: Equatable {
        /// Fresh from a verified sender: deliver it.
        case deliver
        /// It answered this process's challenge: the sender is verified now; deliver it.
        case verified
        /// Its counter was accepted before (or is too old to tell): drop it.
        case replayed
        /// Addressed to another member (captured on its way there): drop it.
        case misaddressed
        /// From an unknown sender: drop it and send this challenge to `to`.
        case challenge(ChallengeNonce, to: NodeAddress)
        /// From an unknown sender already challenged less than an interval ago: drop it.
        case awaitingAnswer
        /// From an unknown sender, but this interval's challenges are spent: drop it.
        case challengeBudgetSpent
    }

    public struct Verified: Equatable {
        public var highest: UInt64
        /// Bit i: counter `highest - i` was accepted (or may no longer be).
        public var window: UInt64
        public var lastHeardMs: Int64
    }

    public struct Pending: Equatable {
        public var nonce: ChallengeNonce
        public var createdMs: Int64
        public var sentMs: Int64
    }

    public let config: Config
    public private(set) var verified: [NodeID: Verified] = [:]
    public private(set) var pending: [NodeID: Pending] = [:]
    public private(set) var answered: [NodeAddress: Int64] = [:]
    private var budgetWindowMs: Int64?
    private var budgetUsed = 0

    public init(config: Config) {
        self.config = config
    }

    public func isVerified(_ sender: NodeID) -> Bool { verified[sender] != nil }

    /// Judges an authenticated heartbeat from `sender` with seal counter `counter`; `echo` is the
    /// nonce it answers, `claimedAddress` the address its heartbeat claims (where a challenge
    /// goes), `addressedToMe` whether the sender sent it to this process's address.
    public mutating func heartbeat<R: RandomNumberGenerator>(
        from sender: NodeID, counter: UInt64, echo: ChallengeNonce?, claimedAddress: NodeAddress,
        addressedToMe: Bool, nowMs: Int64, using rng: inout R
    ) -> Verdict {
        if var known = verified[sender] {
            guard addressedToMe else { return .misaddressed }
            guard accept(counter, into: &known) else { return .replayed }
            known.lastHeardMs = nowMs
            verified[sender] = known
            return .deliver
        }
        if addressedToMe, let echo, let waiting = pending[sender], waiting.nonce == echo,
           nowMs - waiting.createdMs < config.pendingLifetimeMs {
            pending[sender] = nil
            if verified.count >= config.maxVerified, let oldest = verified.min(by: { $0.value.lastHeardMs < $1.value.lastHeardMs }) {
                verified[oldest.key] = nil
            }
            // Everything up to this counter is old news: the datagram that was challenged and any
            // recorded before it.
            verified[sender] = Verified(highest: counter, window: .max, lastHeardMs: nowMs)
            return .verified
        }
        return challenge(sender, at: claimedAddress, nowMs: nowMs, using: &rng) ?? .awaitingAnswer
    }

    /// A challenge for `sender` at `address` unless it is verified or was challenged less than an
    /// interval ago (then nil) — also used to challenge a challenger this process does not know,
    /// so that both sides of a join are verified in one round trip.
    public mutating func challenge<R: RandomNumberGenerator>(
        _ sender: NodeID, at address: NodeAddress, nowMs: Int64, using rng: inout R
    ) -> Verdict? {
        guard verified[sender] == nil else { return nil }
        if let waiting = pending[sender] {
            if nowMs - waiting.createdMs >= config.pendingLifetimeMs {
                pending[sender] = nil
            } else if nowMs - waiting.sentMs < config.intervalMs {
                return nil
            }
        }
        if budgetWindowMs.map({ nowMs - $0 >= config.intervalMs }) ?? true {
            budgetWindowMs = nowMs
            budgetUsed = 0
        }
        guard budgetUsed < config.challengesPerInterval else { return .challengeBudgetSpent }
        budgetUsed += 1
        if var waiting = pending[sender] {
            waiting.sentMs = nowMs
            pending[sender] = waiting
            return .challenge(waiting.nonce, to: address)
        }
        if pending.count >= config.maxPending {
            pending = pending.filter { nowMs - $0.value.createdMs < config.pendingLifetimeMs }
            if pending.count >= config.maxPending, let oldest = pending.min(by: { $0.value.createdMs < $1.value.createdMs }) {
                pending[oldest.key] = nil
            }
        }
        let nonce = ChallengeNonce(using: &rng)
        pending[sender] = Pending(nonce: nonce, createdMs: nowMs, sentMs: nowMs)
        return .challenge(nonce, to: address)
    }

    /// What to do with an authenticated challenge from `challenger`.
    public enum ChallengeAnswer: Equatable {
        /// Answer it at `replyTo` (the latest heartbeat sealed again, the nonce echoed), and, if
        /// the challenger is unknown here, challenge it back in the same exchange (`challengeBack`),
        /// so that a join costs one extra round trip and not two.
        case answer(replyTo: NodeAddress, challengeBack: ChallengeNonce?)
        /// It names another process, or was sent to another address (captured on its way there).
        case misdirected
        /// `replyTo` was answered less than `answerGapMs` ago.
        case rateLimited
    }

    /// Judges a challenge `challenger` sealed for `target` at `destination`; `me` and `myAddress`
    /// are this process's.
    public mutating func challenged<R: RandomNumberGenerator>(
        by challenger: NodeID, target: NodeID, destination: NodeAddress, replyTo: NodeAddress,
        me: NodeID, myAddress: NodeAddress, nowMs: Int64, using rng: inout R
    ) -> ChallengeAnswer {
        guard target == me, destination == myAddress else { return .misdirected }
        guard mayAnswer(replyTo: replyTo, nowMs: nowMs) else { return .rateLimited }
        var back: ChallengeNonce?
        if case .challenge(let nonce, _)? = challenge(challenger, at: replyTo, nowMs: nowMs, using: &rng) { back = nonce }
        return .answer(replyTo: replyTo, challengeBack: back)
    }

    /// Whether to answer a challenge whose answer goes to `replyTo` (at most one per
    /// `answerGapMs` per address, so a replayed challenge cannot make this process a reflector).
    mutating func mayAnswer(replyTo: NodeAddress, nowMs: Int64) -> Bool {
        if let last = answered[replyTo], nowMs - last < config.answerGapMs { return false }
        if answered[replyTo] == nil, answered.count >= config.maxAnswered {
            answered = answered.filter { nowMs - $0.value < config.answerGapMs }
            guard answered.count < config.maxAnswered else { return false }
        }
        answered[replyTo] = nowMs
        return true
    }

    /// The anti-replay window of RFC 4303 (IPsec ESP), section 3.4.3, over 64 counters.
    private func accept(_ counter: UInt64, into known: inout Verified) -> Bool {
        if counter > known.highest {
            let shift = counter - known.highest
            known.window = shift >= 64 ? 1 : known.window << shift | 1
            known.highest = counter
            return true
        }
        let age = known.highest - counter
        guard age < 64, known.window & (1 << age) == 0 else { return false }
        known.window |= 1 << age
        return true
    }
}

/// A random value a receiver sends in a challenge and expects back in the answer (128 bits).
public struct ChallengeNonce: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(using rng: inout some RandomNumberGenerator) {
        self.init(high: rng.next(), low: rng.next())
    }
}
