import StarlingCore
import StarlingNode
import Testing

@Suite("Routing a connection by its first bytes")
struct ConnectionRouterTests {
    private let router = ConnectionRouter.standard

    @Test func peerFramesStartWithAZeroByte() {
        let hello = PeerMessageCodec.encode(.hello(sender: NodeID(high: 1, low: 2), address: .ipv4(127, 0, 0, 1, port: 7946)))
        #expect(router.classify(hello) == .route(.peerFrames))
        // A second byte that leaves the sealed magic is enough.
        #expect(router.classify([0, 0]) == .route(.peerFrames))
        #expect(router.classify([0, 0xFF, 0xFF, 0xFF]) == .route(.peerFrames))
        #expect(router.classify([0, 0x53, 0x54, 0x4D]) == .route(.peerFrames))
    }

    /// A sealed link starts with `\0STL`: a connection starting with 0 waits until that can be
    /// told, and a plain frame never starts so (it would announce over 5 MB, beyond the limit).
    @Test func sealedPeerLinksStartWithTheirMagic() {
        #expect(PeerHandshake.magic == [0] + Array("STL".utf8))
        let announced = PeerHandshake.magic.reduce(0) { $0 << 8 | Int($1) }
        // Read as a plain frame: the version byte after the magic is the type of a hello, whose limit it is over.
        #expect(announced > PeerFrameLimits.maxBodyBytes(type: PeerHandshake.version))
        #expect(router.classify([0]) == .waitForMoreBytes)
        #expect(router.classify([0, 0x53]) == .waitForMoreBytes)
        #expect(router.classify([0, 0x53, 0x54]) == .waitForMoreBytes)
        #expect(router.classify(PeerHandshake.magic) == .route(.sealedPeerFrames))
        #expect(router.classify(PeerOpenerHandshake().hello) == .route(.sealedPeerFrames))
    }

    @Test func everyOtherFirstByteIsAClient() {
        #expect(router.classify(Array("PING\r\n".utf8)) == .route(.clientLines))
        #expect(router.classify(Array("SUBMIT echo k1 5\r\nhello\r\n".utf8)) == .route(.clientLines))
        // Garbage too: the client decoder answers it with BAD_REQUEST.
        for first in UInt8(1)...UInt8(255) {
            #expect(router.classify([first, 0, 0]) == .route(.clientLines))
        }
    }

    @Test func nothingReadYetWaits() {
        #expect(router.classify([]) == .waitForMoreBytes)
    }

    /// A magic of several bytes that shares its first byte with peer frames, as Gearman's `\0REQ`
    /// does: it goes first, and a connection starting with 0 waits until the magic can be told.
    @Test func aLongerMagicWaitsForItsBytes() {
        let magic: [UInt8] = [0] + Array("REQ".utf8)
        let router = ConnectionRouter(recognisers: [
            ProtocolRecogniser(.clientLines, magic: magic),
            ProtocolRecogniser(.peerFrames, magic: [0]),
        ])
        #expect(router.classify([0]) == .waitForMoreBytes)
        #expect(router.classify([0, 0x52]) == .waitForMoreBytes)
        #expect(router.classify([0, 0x52, 0x45]) == .waitForMoreBytes)
        #expect(router.classify(magic) == .route(.clientLines))
        #expect(router.classify(magic + [0, 0, 0, 1]) == .route(.clientLines))
        // As soon as a byte differs from the magic, the next recogniser decides.
        #expect(router.classify([0, 0]) == .route(.peerFrames))
        #expect(router.classify([0, 0x52, 0x58]) == .route(.peerFrames))
        #expect(router.classify(Array("REQ".utf8)) == .unrecognised)
    }

    @Test func waitingIsBounded() {
        let limit = ConnectionRouter.maxPrefixBytes
        let undecided = ConnectionRouter(recognisers: [
            ProtocolRecogniser(.clientLines) { _ in .needsMoreBytes },
            ProtocolRecogniser(.peerFrames) { prefix in prefix.count <= limit ? .matches : .doesNotMatch },
        ])
        #expect(undecided.classify([UInt8](repeating: 7, count: limit - 1)) == .waitForMoreBytes)
        // With the bound reached, the undecided recogniser is passed over; no recogniser sees more.
        #expect(undecided.classify([UInt8](repeating: 7, count: limit)) == .route(.peerFrames))
        #expect(undecided.classify([UInt8](repeating: 7, count: 10 * limit)) == .route(.peerFrames))
        let alone = ConnectionRouter(recognisers: [ProtocolRecogniser(.clientLines) { _ in .needsMoreBytes }])
        #expect(alone.classify([UInt8](repeating: 7, count: limit)) == .unrecognised)
    }

    @Test func noRecogniserMeansUnrecognised() {
        let peersOnly = ConnectionRouter(recognisers: [ProtocolRecogniser(.peerFrames, magic: [0])])
        #expect(peersOnly.classify(Array("PING\r\n".utf8)) == .unrecognised)
        #expect(peersOnly.classify([0]) == .route(.peerFrames))
    }
}
