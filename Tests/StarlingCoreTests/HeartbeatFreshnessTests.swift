import StarlingCore
import Testing
import StarlingTestSupport

/// The replay rules of sealed heartbeats, on an explicit clock and a seeded generator
/// (docs/SECURITY.md, "Sealed heartbeats").
@Suite("HeartbeatFreshness")
struct HeartbeatFreshnessTests {
    static let sender = NodeID(high: 7, low: 7)
    static let address = NodeAddress.ipv4(127, 0, 0, 1, port: 7001)

    /// One receiver's table with its generator, judged from test code.
    final class Receiver {
        var freshness: HeartbeatFreshness
        var rng = SeededRandom(seed: 1)

        init(_ config: HeartbeatFreshness.Config = .init(intervalMs: 100)) {
            freshness = HeartbeatFreshness(config: config)
        }

        func judge(
            counter: UInt64, echo: ChallengeNonce? = nil, from sender: NodeID = HeartbeatFreshnessTests.sender,
            addressedToMe: Bool = true, at nowMs: Int64
        ) -> HeartbeatFreshness.Verdict {
            freshness.heartbeat(
                from: sender, counter: counter, echo: echo, claimedAddress: HeartbeatFreshnessTests.address,
                addressedToMe: addressedToMe, nowMs: nowMs, using: &rng)
        }

        static let me = NodeID(high: 1, low: 1)
        static let myAddress = NodeAddress.ipv4(127, 0, 0, 1, port: 7000)

        /// Whether a challenge for this receiver, answered at `replyTo`, is answered.
        func mayAnswer(replyTo: NodeAddress, nowMs: Int64) -> Bool {
            if case .answer = challenged(replyTo: replyTo, at: nowMs) { true } else { false }
        }

        func challenged(
            by challenger: NodeID = HeartbeatFreshnessTests.sender, target: NodeID = Receiver.me,
            destination: NodeAddress = Receiver.myAddress, replyTo: NodeAddress, at nowMs: Int64
        ) -> HeartbeatFreshness.ChallengeAnswer {
            freshness.challenged(
                by: challenger, target: target, destination: destination, replyTo: replyTo, me: Receiver.me,
                myAddress: Receiver.myAddress, nowMs: nowMs, using: &rng)
        }

        /// Challenged at `counter`, answered with `answer`: verified.
        func verify(counter: UInt64, answer: UInt64, at nowMs: Int64) {
            guard case .challenge(let nonce, let to) = judge(counter: counter, at: nowMs) else {
                Issue.record("an unknown sender is challenged")
                return
            }
            #expect(to == HeartbeatFreshnessTests.address)
            #expect(judge(counter: answer, echo: nonce, at: nowMs + 1) == .verified)
        }
    }

    @Test("an unknown sender is challenged, never delivered; its answer verifies it, and nothing older is taken")
    func challengeThenVerify() throws {
        let r = Receiver()
        guard case .challenge(let nonce, _) = r.judge(counter: 10, at: 0) else {
            Issue.record("expected a challenge")
            return
        }
        #expect(r.judge(counter: 11, at: 5) == .awaitingAnswer)
        #expect(r.judge(counter: 13, echo: ChallengeNonce(high: 1, low: 2), at: 6) == .awaitingAnswer)
        #expect(r.judge(counter: 12, echo: nonce, at: 7) == .verified)
        // The challenged datagram, anything recorded before the answer, and the answer itself.
        for counter: UInt64 in [1, 10, 11, 12] { #expect(r.judge(counter: counter, at: 8) == .replayed) }
        #expect(r.judge(counter: 14, at: 9) == .deliver)
        #expect(r.judge(counter: 14, at: 9) == .replayed)
        // Reordered: 13 was never taken and is within the window, once.
        #expect(r.judge(counter: 13, at: 10) == .deliver)
        #expect(r.judge(counter: 13, at: 10) == .replayed)
        #expect(r.judge(counter: 500, at: 11) == .deliver)
        #expect(r.judge(counter: 436, at: 11) == .replayed)  // 64 below: too old to tell
        #expect(r.judge(counter: 437, at: 11) == .deliver)
    }

    @Test("an answer must echo the pending nonce, be addressed here and come within the challenge's lifetime")
    func answersChecked() throws {
        let r = Receiver()
        guard case .challenge(let nonce, _) = r.judge(counter: 3, at: 0) else {
            Issue.record("expected a challenge")
            return
        }
        #expect(r.judge(counter: 4, echo: nonce, addressedToMe: false, at: 1) == .awaitingAnswer)
        // Another sender cannot use the nonce.
        let other = NodeID(high: 8, low: 8)
        if case .challenge = r.judge(counter: 5, echo: nonce, from: other, at: 2) {} else {
            Issue.record("another sender echoing the nonce is challenged itself")
        }
        // Past the lifetime the nonce is void; a new challenge has a new nonce.
        let late = r.freshness.config.pendingLifetimeMs
        guard case .challenge(let fresh, _) = r.judge(counter: 6, echo: nonce, at: late) else {
            Issue.record("an expired challenge is replaced")
            return
        }
        #expect(fresh != nonce)
        #expect(r.judge(counter: 7, echo: nonce, at: late + 1) == .awaitingAnswer)
        #expect(r.judge(counter: 8, echo: fresh, at: late + 2) == .verified)
        #expect(r.judge(counter: 9, addressedToMe: false, at: late + 3) == .misaddressed)
        #expect(r.judge(counter: 9, at: late + 3) == .deliver)
    }

    @Test("a pending challenge is sent again at most once per interval, with the same nonce")
    func resendOncePerInterval() {
        let r = Receiver()
        guard case .challenge(let first, _) = r.judge(counter: 1, at: 0) else {
            Issue.record("expected a challenge")
            return
        }
        #expect(r.judge(counter: 2, at: 99) == .awaitingAnswer)
        #expect(r.judge(counter: 3, at: 100) == .challenge(first, to: Self.address))
        #expect(r.judge(counter: 4, at: 150) == .awaitingAnswer)
        #expect(r.freshness.pending.count == 1)
    }

    @Test("bounds: pending challenges, challenges per interval, verified senders, answered addresses")
    func bounds() throws {
        var config = HeartbeatFreshness.Config(intervalMs: 100)
        config.maxPending = 4
        config.challengesPerInterval = 6
        config.maxVerified = 3
        config.maxAnswered = 2
        var r = Receiver(config)
        var verdicts: [HeartbeatFreshness.Verdict] = []
        for n in 0..<10 {
            verdicts.append(r.judge(counter: 1, from: NodeID(high: 100, low: UInt64(n)), at: 0))
        }
        #expect(verdicts.filter { if case .challenge = $0 { true } else { false } }.count == 6)
        #expect(verdicts.suffix(4).allSatisfy { $0 == .challengeBudgetSpent })
        #expect(r.freshness.pending.count == 4)
        // The oldest pending gave way; the next interval has a new budget.
        if case .challenge = r.judge(counter: 2, from: NodeID(high: 100, low: 9), at: 100) {} else {
            Issue.record("a new interval has a new budget")
        }
        #expect(r.freshness.pending.count == 4)

        // Verified: the least recently heard is forgotten, and is challenged again.
        r = Receiver(config)
        let ids = (0..<4).map { NodeID(high: 200, low: UInt64($0)) }
        for (n, id) in ids.enumerated() {
            guard case .challenge(let nonce, _) = r.judge(counter: 1, from: id, at: Int64(n) * 10) else {
                Issue.record("expected a challenge")
                return
            }
            #expect(r.judge(counter: 2, echo: nonce, from: id, at: Int64(n) * 10 + 1) == .verified)
        }
        #expect(r.freshness.verified.count == 3)
        #expect(!r.freshness.isVerified(ids[0]))
        if case .challenge = r.judge(counter: 3, from: ids[0], at: 100) {} else {
            Issue.record("a forgotten sender is challenged again")
        }

        // Answers: one per gap per reply address, a bounded table of addresses.
        let a = NodeAddress.ipv4(10, 0, 0, 1, port: 1), b = NodeAddress.ipv4(10, 0, 0, 2, port: 1)
        let c = NodeAddress.ipv4(10, 0, 0, 3, port: 1)
        #expect(r.mayAnswer(replyTo: a, nowMs: 0))
        #expect(!r.mayAnswer(replyTo: a, nowMs: 49))
        #expect(r.mayAnswer(replyTo: b, nowMs: 49))
        #expect(!r.mayAnswer(replyTo: c, nowMs: 49))  // table full, nothing old enough to drop
        #expect(r.mayAnswer(replyTo: a, nowMs: 50))
        #expect(r.mayAnswer(replyTo: c, nowMs: 120))
        #expect(r.freshness.answered.count <= 2)
    }

    @Test("a recording replayed in any order, at any time, after its sender is gone: nothing delivered")
    func recordingReplayed() throws {
        let r = Receiver()
        r.verify(counter: 1, answer: 2, at: 0)
        var recorded: [UInt64] = []
        for counter: UInt64 in 3...40 {
            #expect(r.judge(counter: counter, at: Int64(counter) * 100) == .deliver)
            recorded.append(counter)
        }
        // Sender dies. Every recorded datagram again, shuffled, much later: all replays.
        var generator = SeededRandom(seed: 9)
        for counter in recorded.shuffled(using: &generator) {
            #expect(r.judge(counter: counter, at: 100_000) == .replayed)
        }
        // Another receiver (a fresh table, as after a restart) only challenges; without the live
        // sender nobody answers, so nothing is ever delivered there either.
        let restarted = Receiver()
        var delivered = 0
        for (n, counter) in recorded.enumerated() {
            switch restarted.judge(counter: counter, at: 200_000 + Int64(n) * 50) {
            case .deliver, .verified: delivered += 1
            default: break
            }
        }
        #expect(delivered == 0)
    }

    @Test("a challenge is answered only when it names this process at its address, and challenges back an unknown challenger once")
    func challengesAreJudged() {
        let r = Receiver()
        let back = NodeAddress.ipv4(127, 0, 0, 1, port: 7002)
        #expect(r.challenged(target: HeartbeatFreshnessTests.sender, replyTo: back, at: 0) == .misdirected)
        #expect(r.challenged(destination: back, replyTo: back, at: 0) == .misdirected)
        guard case .answer(let to, let challengeBack?) = r.challenged(replyTo: back, at: 0) else {
            Issue.record("an unknown challenger is answered and challenged back")
            return
        }
        #expect(to == back)
        #expect(r.challenged(replyTo: back, at: 10) == .rateLimited)
        // Its answer verifies it: a later challenge from it is answered without one back.
        #expect(r.judge(counter: 5, echo: challengeBack, at: 20) == .verified)
        #expect(r.challenged(replyTo: back, at: 200) == .answer(replyTo: back, challengeBack: nil))
    }
}
