import Foundation
import StarlingCore
import StarlingNode
import Testing

/// Sealing and opening heartbeat datagrams (docs/SECURITY.md, "Sealed heartbeats").
@Suite("HeartbeatSeal")
struct HeartbeatSealTests {
    static func keys(_ lines: [String]) throws -> ClusterKeys {
        try ClusterKeys.load(path: try SecretFiles.write(lines))
    }

    let heartbeat = Heartbeat(
        sender: NodeID(high: 0x0192_F3A4_5B6C_7D8E, low: 42), service: try! ServiceName("echo"), status: .primary,
        priority: 3, epoch: 9, workload: Workload(running: 1, capacity: 4, backlog: 0),
        address: .ipv4(127, 0, 0, 1, port: 7001), flags: [.join], sequence: 77,
        gossip: [.init(id: NodeID(high: 5, low: 6), sequence: 3, address: .ipv4(127, 0, 0, 1, port: 7002))])
    let destination = NodeAddress.ipv4(127, 0, 0, 1, port: 7003)

    func datagram(counter: UInt64 = 5, echo: ChallengeNonce? = nil) -> SealedDatagram {
        SealedDatagram(
            sender: heartbeat.sender, counter: counter, destination: destination,
            content: .heartbeat(body: HeartbeatCodec.encode(heartbeat), echo: echo))
    }

    @Test("a sealed heartbeat and a challenge open to what was sealed, with any of the keys")
    func roundTrip() throws {
        let a = ClusterKeys.generateLine(), b = ClusterKeys.generateLine()
        let sealer = try Self.keys([a])
        let rotated = try Self.keys([b, a])
        let plain = datagram(echo: ChallengeNonce(high: 1, low: 2))
        let bytes = HeartbeatSeal.seal(plain, with: sealer.sealing)
        #expect(HeartbeatSeal.isSealed(bytes))
        #expect(!bytes.starts(with: HeartbeatCodec.magic))
        #expect(HeartbeatSeal.open(bytes, keys: sealer.all) == .success(plain))
        #expect(HeartbeatSeal.open(bytes, keys: rotated.all) == .success(plain))
        // The body is not in clear.
        let body = HeartbeatCodec.encode(heartbeat)
        let probe = Array(body[40..<52])
        #expect(!(0...(bytes.count - probe.count)).contains { Array(bytes[$0..<($0 + probe.count)]) == probe })

        let challenge = SealedDatagram(
            sender: NodeID(high: 1, low: 1), counter: 1, destination: destination,
            content: .challenge(nonce: ChallengeNonce(high: 3, low: 4), target: heartbeat.sender, replyTo: .ipv4(10, 1, 2, 3, port: 9)))
        #expect(HeartbeatSeal.open(HeartbeatSeal.seal(challenge, with: sealer.sealing), keys: rotated.all) == .success(challenge))
    }

    @Test("the derived sender keys follow a change of cluster keys: none is used after its cluster key went")
    func senderKeysFollowTheClusterKeys() throws {
        let a = try Self.keys([ClusterKeys.generateLine()]), b = try Self.keys([ClusterKeys.generateLine()])
        let plain = datagram()
        var senderKeys = HeartbeatSenderKeys()
        #expect(HeartbeatSeal.open(HeartbeatSeal.seal(plain, with: a.sealing), keys: a.all, senderKeys: &senderKeys) == .success(plain))
        // Remembered under A: a datagram sealed with B opens under B, one sealed with A no longer does.
        #expect(HeartbeatSeal.open(HeartbeatSeal.seal(plain, with: b.sealing), keys: b.all, senderKeys: &senderKeys) == .success(plain))
        #expect(HeartbeatSeal.open(HeartbeatSeal.seal(plain, with: a.sealing), keys: b.all, senderKeys: &senderKeys)
            .failureReason == "heartbeat_unopened")
        // Sealing through the same table uses the current first key.
        let sealed = HeartbeatSeal.seal(plain, with: b.all, senderKeys: &senderKeys)
        #expect(HeartbeatSeal.open(sealed, keys: b.all) == .success(plain))
    }

    @Test("another key, any flipped bit, any truncation, a plain heartbeat: refused by reason")
    func refusals() throws {
        let keys = try Self.keys([ClusterKeys.generateLine()])
        let other = try Self.keys([ClusterKeys.generateLine()])
        let bytes = HeartbeatSeal.seal(datagram(), with: keys.sealing)
        #expect(HeartbeatSeal.open(bytes, keys: other.all).failureReason == "heartbeat_unopened")
        for index in bytes.indices where index >= 3 {
            var tampered = bytes
            tampered[index] ^= 0x01
            #expect(HeartbeatSeal.open(tampered, keys: keys.all).failureReason == "heartbeat_unopened", "byte \(index)")
        }
        for length in 3..<bytes.count {
            #expect(HeartbeatSeal.open(Array(bytes.prefix(length)), keys: keys.all).failureReason == "heartbeat_unopened")
        }
        var version = bytes
        version[2] = 2
        #expect(HeartbeatSeal.open(version, keys: keys.all).failureReason == "unsupported_version")
        #expect(HeartbeatSeal.open(HeartbeatCodec.encode(heartbeat), keys: keys.all).failureReason == "heartbeat_unsealed")
        #expect(HeartbeatSeal.open([0x00, 0x01], keys: keys.all).failureReason == "bad_magic")
        #expect(HeartbeatSeal.open([], keys: keys.all).failureReason == "bad_magic")
        #expect(HeartbeatSeal.open(bytes + [UInt8](repeating: 0, count: 2_000), keys: keys.all).failureReason == "oversized")
    }

    @Test("the same content sealed twice with new counters differs; the per-datagram cost")
    func costAndUniqueness() throws {
        let keys = try Self.keys([ClusterKeys.generateLine(), ClusterKeys.generateLine()])
        let first = HeartbeatSeal.seal(datagram(counter: 1), with: keys.sealing)
        let second = HeartbeatSeal.seal(datagram(counter: 2), with: keys.sealing)
        #expect(first.count == second.count)
        #expect(zip(first.dropFirst(HeartbeatSeal.headerBytes), second.dropFirst(HeartbeatSeal.headerBytes)).contains { $0 != $1 })
        let plainBytes = HeartbeatCodec.encode(heartbeat).count
        print("sealed heartbeat: \(first.count) bytes for a \(plainBytes)-byte heartbeat (+\(first.count - plainBytes))")

        let rounds = 2_000
        let clock = ContinuousClock()
        var sealed: [[UInt8]] = []
        sealed.reserveCapacity(rounds)
        let sealTime = clock.measure {
            for n in 0..<rounds { sealed.append(HeartbeatSeal.seal(datagram(counter: UInt64(n + 1)), with: keys.sealing)) }
        }
        // The second key opens them: the worst case of a rotation, the first key tried in vain.
        let lastKeyFirst = try Self.keys([ClusterKeys.generateLine(), ClusterKeys.generateLine()])
        var opened = 0
        let openTime = clock.measure {
            for bytes in sealed where (try? HeartbeatSeal.open(bytes, keys: keys.all).get()) != nil { opened += 1 }
        }
        #expect(opened == rounds)
        let refusedTime = clock.measure {
            for bytes in sealed.prefix(rounds / 4) { _ = HeartbeatSeal.open(bytes, keys: lastKeyFirst.all) }
        }
        func microseconds(_ d: Duration, _ n: Int) -> Double {
            Double(d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000) / Double(n)
        }
        print(String(format: "per datagram (debug build): seal %.1f µs, open %.1f µs, refuse with 2 keys %.1f µs",
                     microseconds(sealTime, rounds), microseconds(openTime, rounds), microseconds(refusedTime, rounds / 4)))
    }
}

extension Result where Failure == HeartbeatSealError {
    var failureReason: String? {
        if case .failure(let error) = self { error.reason } else { nil }
    }
}
