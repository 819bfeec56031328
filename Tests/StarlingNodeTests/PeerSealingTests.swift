import Crypto
import StarlingCore
import StarlingNode
import Testing

/// The sealed peer link as pure types, no sockets: `PeerHandshake` and its records.
@Suite("Sealed peer links: handshake and records")
struct PeerSealingTests {
    private static func key() -> SymmetricKey { SymmetricKey(size: .bits256) }

    /// Runs a whole handshake between the two sides; the sessions (opener's, acceptor's) and the
    /// bytes the opener sent (hello, then its proof).
    private static func handshake(opener openerKeys: ClusterKeys, acceptor acceptorKeys: ClusterKeys) throws
        -> (opener: PeerSession, acceptor: PeerSession, openerBytes: [UInt8])
    {
        var opener = PeerOpenerHandshake()
        var acceptor = PeerAcceptorHandshake()
        let first = try acceptor.receive(opener.hello, keys: acceptorKeys)
        #expect(first.session == nil)
        #expect(first.reply.count == PeerHandshake.acceptorProofBytes)
        let done = try #require(try opener.receive(first.reply, keys: openerKeys))
        let second = try acceptor.receive(done.proof, keys: acceptorKeys)
        let session = try #require(second.session)
        return (done.session, session, opener.hello + done.proof)
    }

    private static func frames(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for n in 0..<count {
            PeerMessageCodec.encode(.retire(reason: "frame \(n)"), into: &bytes)
        }
        return bytes
    }

    @Test func bothSidesProveTheKeyAndRecordsCarryTheFrames() throws {
        let keys = ClusterKeys([Self.key()])
        var (opener, acceptor, _) = try Self.handshake(opener: keys, acceptor: keys)
        let plaintext = Self.frames(50)
        var wire: [UInt8] = []
        opener.sealer.seal(plaintext, into: &wire)
        #expect(wire.count == plaintext.count + PeerRecordSealer.headerBytes + PeerRecordSealer.tagBytes)
        #expect(!wire.contains(subsequence: Array("frame 7".utf8)), "records are encrypted")
        // Any cut of the bytes gives the same plaintext.
        var opened: [UInt8] = []
        for byte in wire { try acceptor.opener.open([byte], into: &opened) }
        #expect(opened == plaintext)
        // The other direction has its own key and counter.
        var back: [UInt8] = []
        acceptor.sealer.seal([1, 2, 3], into: &back)
        var openedBack: [UInt8] = []
        try opener.opener.open(back, into: &openedBack)
        #expect(openedBack == [1, 2, 3])
    }

    @Test func aLargeWriteIsSplitIntoBoundedRecords() throws {
        let keys = ClusterKeys([Self.key()])
        var (opener, acceptor, _) = try Self.handshake(opener: keys, acceptor: keys)
        let plaintext = (0..<(2 * PeerRecordSealer.maxPlaintextBytes + 5)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var wire: [UInt8] = []
        opener.sealer.seal(plaintext, into: &wire)
        #expect(wire.count == plaintext.count + 3 * (PeerRecordSealer.headerBytes + PeerRecordSealer.tagBytes))
        var opened: [UInt8] = []
        var offset = 0
        while offset < wire.count {
            let end = min(offset + 65_536, wire.count)
            try acceptor.opener.open(wire[offset..<end], into: &opened)
            offset = end
        }
        #expect(opened == plaintext)
        #expect(acceptor.opener.bufferedByteCount == 0)
    }

    @Test func rotationLinksFormWhileTheOpenerAcceptsTheAcceptorsSealingKey() throws {
        let old = Self.key(), new = Self.key()
        // Step 2 of a rotation: some processes seal with the new key, others still with the old.
        let proven = try Self.handshake(opener: ClusterKeys([old, new]), acceptor: ClusterKeys([new, old]))
        #expect(proven.opener.clusterKey == new && proven.acceptor.clusterKey == new)
        _ = try Self.handshake(opener: ClusterKeys([new, old]), acceptor: ClusterKeys([old, new]))
    }

    @Test func anOpenerWithoutTheAcceptorsKeyRefusesItsProof() throws {
        var opener = PeerOpenerHandshake()
        var acceptor = PeerAcceptorHandshake()
        let reply = try acceptor.receive(opener.hello, keys: ClusterKeys([Self.key()])).reply
        #expect(throws: PeerSealError.self) { try opener.receive(reply, keys: ClusterKeys([Self.key(), Self.key()])) }
        do {
            _ = try opener.receive(reply, keys: ClusterKeys([Self.key()]))
        } catch {
            #expect(error.reason == "peer_handshake_failed")
        }
    }

    @Test func anAcceptorRefusesAProofMadeWithAnotherKey() throws {
        let ours = Self.key(), theirs = Self.key()
        var acceptor = PeerAcceptorHandshake()
        var opener = PeerOpenerHandshake()
        let reply = try acceptor.receive(opener.hello, keys: ClusterKeys([ours])).reply
        // An opener that holds our key besides its own proves with ours; one made with another
        // key, or random bytes, or the acceptor's own proof sent back (a reflection), is refused.
        _ = try #require(try opener.receive(reply, keys: ClusterKeys([theirs, ours])))
        for forged in [
            [UInt8](repeating: 0, count: PeerHandshake.openerProofBytes),
            PeerHandshake.randomNonce(),
            Array(reply.suffix(PeerHandshake.macBytes)),
        ] {
            var fresh = PeerAcceptorHandshake()
            let attacker = PeerOpenerHandshake()
            _ = try fresh.receive(attacker.hello, keys: ClusterKeys([ours]))
            let error = #expect(throws: PeerSealError.self) { try fresh.receive(forged, keys: ClusterKeys([ours])) }
            #expect(error?.reason == "peer_handshake_failed")
        }
    }

    @Test func aWrongMagicOrVersionIsRefused() throws {
        let keys = ClusterKeys([Self.key()])
        var hello = PeerOpenerHandshake().hello
        hello[PeerHandshake.magic.count] = PeerHandshake.version &+ 1
        var acceptor = PeerAcceptorHandshake()
        #expect(throws: PeerSealError.self) { try acceptor.receive(hello, keys: keys) }
        var other = PeerAcceptorHandshake()
        #expect(throws: PeerSealError.self) { try other.receive([0, 0, 0, 9], keys: keys) }
    }

    @Test func aTamperedRecordDoesNotOpen() throws {
        let keys = ClusterKeys([Self.key()])
        var (opener, acceptor, _) = try Self.handshake(opener: keys, acceptor: keys)
        var wire: [UInt8] = []
        opener.sealer.seal(Self.frames(3), into: &wire)
        // A bit flipped in the ciphertext (first byte, middle) or the tag (last byte); in the top
        // byte of the length, the record is over the bound.
        for (index, reason) in [
            (4, "peer_record_unopened"), (wire.count / 2, "peer_record_unopened"), (wire.count - 1, "peer_record_unopened"),
            (0, "peer_record_oversized"),
        ] {
            var tampered = wire
            tampered[index] ^= 0x01
            var copy = acceptor.opener
            var opened: [UInt8] = []
            let error = #expect(throws: PeerSealError.self) { try copy.open(tampered, into: &opened) }
            #expect(opened.isEmpty)
            #expect(error?.reason == reason)
        }
        var opened: [UInt8] = []
        try acceptor.opener.open(wire, into: &opened)
        #expect(!opened.isEmpty)
    }

    @Test func reorderedDroppedOrReplayedRecordsDoNotOpen() throws {
        let keys = ClusterKeys([Self.key()])
        var (opener, acceptor, _) = try Self.handshake(opener: keys, acceptor: keys)
        var records: [[UInt8]] = []
        for n in 0..<3 {
            var record: [UInt8] = []
            opener.sealer.seal(Self.frames(n + 1), into: &record)
            records.append(record)
        }
        func opens(_ sequence: [[UInt8]]) -> Bool {
            var copy = acceptor.opener
            var opened: [UInt8] = []
            return (try? copy.open(sequence.flatMap { $0 }, into: &opened)) != nil
        }
        #expect(opens(records))
        #expect(!opens([records[1], records[0], records[2]]), "reordered")
        #expect(!opens([records[0], records[2]]), "one dropped")
        #expect(!opens([records[0], records[0]]), "replayed")
        var opened: [UInt8] = []
        try acceptor.opener.open(records[0], into: &opened)
        #expect(throws: PeerSealError.self) { try acceptor.opener.open(records[0], into: &opened) }
        // Once failed, it stays failed.
        #expect(throws: PeerSealError.self) { try acceptor.opener.open(records[1], into: &opened) }
    }

    @Test func anOversizedRecordIsRefusedBeforeItsBody() throws {
        let keys = ClusterKeys([Self.key()])
        var (_, acceptor, _) = try Self.handshake(opener: keys, acceptor: keys)
        let length = UInt32(PeerRecordSealer.maxPlaintextBytes + 1)
        let header = (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) }
        var opened: [UInt8] = []
        let error = #expect(throws: PeerSealError.self) { try acceptor.opener.open(header, into: &opened) }
        #expect(error?.reason == "peer_record_oversized")
    }

    @Test func aRecordedSessionReplayedOnANewConnectionFails() throws {
        let keys = ClusterKeys([Self.key()])
        var (opener, _, openerBytes) = try Self.handshake(opener: keys, acceptor: keys)
        var records: [UInt8] = []
        opener.sealer.seal(Self.frames(4), into: &records)
        let transcript = openerBytes + records
        // A new connection: the acceptor draws a new nonce, so the recorded proof does not match.
        var acceptor = PeerAcceptorHandshake()
        let error = #expect(throws: PeerSealError.self) { try acceptor.receive(transcript, keys: keys) }
        #expect(error?.reason == "peer_handshake_failed")
        // Even a replay whose handshake is redone by someone with the key opens none of the old
        // records: the session keys come from both nonces.
        var (_, fresh, _) = try Self.handshake(opener: keys, acceptor: keys)
        var opened: [UInt8] = []
        #expect(throws: PeerSealError.self) { try fresh.opener.open(records, into: &opened) }
        #expect(opened.isEmpty)
    }

    @Test func theSameNoncesGiveTheSameKeysAndOthersDoNot() throws {
        // Both nonces reach the keys: fixing the opener's does not let a replay through.
        let keys = ClusterKeys([Self.key()])
        let nc = PeerHandshake.randomNonce()
        var opener = PeerOpenerHandshake(nonce: nc)
        var one = PeerAcceptorHandshake(), two = PeerAcceptorHandshake()
        let replyOne = try one.receive(opener.hello, keys: keys).reply
        let replyTwo = try two.receive(opener.hello, keys: keys).reply
        #expect(replyOne != replyTwo)
        let done = try #require(try opener.receive(replyOne, keys: keys))
        #expect(throws: PeerSealError.self) { try two.receive(done.proof, keys: keys) }
        #expect(try one.receive(done.proof, keys: keys).session != nil)
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count) where self[start..<(start + subsequence.count)].elementsEqual(subsequence) {
            return true
        }
        return false
    }
}
