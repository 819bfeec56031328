import Crypto
import Foundation

/// Why a sealed peer connection was refused; `reason` names its rejection counter.
public struct PeerSealError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bad magic or version, or a proof that no accepted key made.
        case handshakeFailed
        /// A record that does not open: tampered, reordered, replayed, or sealed with another key.
        case recordUnopened
        /// A record announcing more than `PeerRecordSealer.maxPlaintextBytes`.
        case recordOversized
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// The rejection counter (`STATUS`).
    public var reason: String {
        switch kind {
        case .handshakeFailed: "peer_handshake_failed"
        case .recordUnopened: "peer_record_unopened"
        case .recordOversized: "peer_record_oversized"
        }
    }
}

/// The start of a sealed peer link (docs/SECURITY.md, "Authenticated peer links"): a mutual
/// challenge–response over HMAC-SHA256 with the cluster key, from which HKDF derives one session
/// key per direction for the records (`PeerRecordSealer`, `PeerRecordOpener`).
///
/// ```
/// opener → acceptor   hello  = magic "\0STL" | version u8 | Nc (32 random bytes)
/// acceptor → opener   proof  = Ns (32 random bytes) | HMAC(K, "starling peer acceptor" | version | Nc | Ns)
/// opener → acceptor   proof  = HMAC(K, "starling peer opener" | version | Nc | Ns), then records
/// session keys        HKDF-SHA256(K, salt Nc | Ns, info "starling peer opener→acceptor"
///                     or "starling peer acceptor→opener"), 32 bytes each
/// ```
///
/// K is the acceptor's sealing key; the opener finds it among all the keys it accepts, so links
/// form at every step of a rotation. The labels keep one role's proof from serving as the other's
/// (a reflection), and the fresh nonces of both sides keep a recorded handshake from proving
/// anything on a new connection. Pure: no sockets, no clock.
public enum PeerHandshake {
    /// What a sealed connection starts with. Read as a plain frame's length prefix it would announce
    /// 0x0053544C = 5,461,068 bytes, and the version byte after it would be the type of a `hello`,
    /// whose limit (`PeerFrameLimits.controlFrameBytes`) that is over: no plain peer connection can
    /// start with it.
    public static let magic: [UInt8] = [0x00, 0x53, 0x54, 0x4C]
    public static let version: UInt8 = 1
    public static let nonceBytes = 32
    public static let macBytes = SHA256.byteCount
    /// magic | version | Nc.
    public static let openerHelloBytes = magic.count + 1 + nonceBytes
    /// Ns | acceptor's MAC.
    public static let acceptorProofBytes = nonceBytes + macBytes
    /// The opener's MAC.
    public static let openerProofBytes = macBytes
    /// How long either side waits for the other's proof before closing the connection.
    public static let timeoutMs: UInt64 = 5_000

    /// 32 bytes from the system's cryptographic generator (through swift-crypto).
    public static func randomNonce() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    enum Role: String {
        case opener, acceptor
    }

    static func mac(_ role: Role, key: SymmetricKey, opener nc: [UInt8], acceptor ns: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: transcript(role, nc, ns), using: key))
    }

    static func isValid(_ code: ArraySlice<UInt8>, _ role: Role, key: SymmetricKey, opener nc: [UInt8], acceptor ns: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: transcript(role, nc, ns), using: key)
    }

    private static func transcript(_ role: Role, _ nc: [UInt8], _ ns: [UInt8]) -> [UInt8] {
        Array("starling peer \(role.rawValue)".utf8) + [version] + nc + ns
    }

    /// The two directions' record keys.
    static func sessionKeys(key: SymmetricKey, opener nc: [UInt8], acceptor ns: [UInt8])
        -> (openerToAcceptor: SymmetricKey, acceptorToOpener: SymmetricKey)
    {
        let salt = nc + ns
        func derive(_ info: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: Array(info.utf8), outputByteCount: 32)
        }
        return (derive("starling peer opener→acceptor"), derive("starling peer acceptor→opener"))
    }
}

/// One side's state once the handshake succeeded: the cluster key it proved (a key reload closes
/// the connection when that key is no longer accepted), and the records each way.
public struct PeerSession {
    public let clusterKey: SymmetricKey
    public var sealer: PeerRecordSealer
    public var opener: PeerRecordOpener
}

/// The side that opens the connection (`PeerLinks`): sends `hello`, checks the acceptor's proof
/// against every accepted key, answers with its own.
public struct PeerOpenerHandshake {
    /// The first bytes to send.
    public let hello: [UInt8]
    private let nonce: [UInt8]
    private var received: [UInt8] = []

    public init(nonce: [UInt8] = PeerHandshake.randomNonce()) {
        precondition(nonce.count == PeerHandshake.nonceBytes)
        self.nonce = nonce
        hello = PeerHandshake.magic + [PeerHandshake.version] + nonce
    }

    /// Feeds what the acceptor sent. nil while its proof is incomplete; then the proof to send
    /// before any record, the session, and the bytes that came after the acceptor's proof (records).
    /// Throws `.handshakeFailed` when no key in `keys.all` made the acceptor's proof.
    public mutating func receive(_ bytes: some Collection<UInt8>, keys: ClusterKeys) throws(PeerSealError)
        -> (proof: [UInt8], session: PeerSession, rest: [UInt8])?
    {
        received.append(contentsOf: bytes)
        guard received.count >= PeerHandshake.acceptorProofBytes else { return nil }
        let ns = Array(received[0..<PeerHandshake.nonceBytes])
        let code = received[PeerHandshake.nonceBytes..<PeerHandshake.acceptorProofBytes]
        let rest = Array(received[PeerHandshake.acceptorProofBytes...])
        received = []
        // Every key is tried, so the time taken does not say which one matched.
        var found: SymmetricKey?
        for key in keys.all where PeerHandshake.isValid(code, .acceptor, key: key, opener: nonce, acceptor: ns) {
            if found == nil { found = key }
        }
        guard let key = found else {
            throw PeerSealError(.handshakeFailed, "the acceptor's proof was made with none of our cluster keys")
        }
        let keys = PeerHandshake.sessionKeys(key: key, opener: nonce, acceptor: ns)
        let session = PeerSession(
            clusterKey: key, sealer: PeerRecordSealer(key: keys.openerToAcceptor),
            opener: PeerRecordOpener(key: keys.acceptorToOpener))
        return (PeerHandshake.mac(.opener, key: key, opener: nonce, acceptor: ns), session, rest)
    }
}

/// The side that accepted the connection (`PeerConnection`): answers the opener's hello with a
/// fresh nonce and a proof made with its sealing key, then checks the opener's proof.
public struct PeerAcceptorHandshake {
    /// What one call to `receive` produced.
    public struct Step {
        /// Bytes to send (the acceptor's proof, once the hello is in).
        public var reply: [UInt8] = []
        /// Set once the opener's proof checked out.
        public var session: PeerSession?
        /// Bytes after the opener's proof: its first records.
        public var rest: [UInt8] = []
    }

    private let nonce: [UInt8]
    private var received: [UInt8] = []
    /// Set once the hello is answered: the opener's nonce and the key the answer was made with.
    private var answered: (nc: [UInt8], key: SymmetricKey)?

    public init(nonce: [UInt8] = PeerHandshake.randomNonce()) {
        precondition(nonce.count == PeerHandshake.nonceBytes)
        self.nonce = nonce
    }

    /// The cluster key this side proved with, once it answered the hello.
    public var clusterKey: SymmetricKey? { answered?.key }

    /// Feeds what the opener sent (from its first byte, magic included).
    public mutating func receive(_ bytes: some Collection<UInt8>, keys: ClusterKeys) throws(PeerSealError) -> Step {
        received.append(contentsOf: bytes)
        var step = Step()
        if answered == nil {
            guard received.count >= PeerHandshake.openerHelloBytes else {
                guard PeerHandshake.magic.starts(with: received.prefix(PeerHandshake.magic.count)) else {
                    throw PeerSealError(.handshakeFailed, "the connection does not start with the sealed-link magic")
                }
                return step
            }
            guard received.starts(with: PeerHandshake.magic) else {
                throw PeerSealError(.handshakeFailed, "the connection does not start with the sealed-link magic")
            }
            let version = received[PeerHandshake.magic.count]
            guard version == PeerHandshake.version else {
                throw PeerSealError(
                    .handshakeFailed, "sealed-link version \(version), this process speaks \(PeerHandshake.version)")
            }
            let nc = Array(received[(PeerHandshake.magic.count + 1)..<PeerHandshake.openerHelloBytes])
            received.removeFirst(PeerHandshake.openerHelloBytes)
            answered = (nc, keys.sealing)
            step.reply = nonce + PeerHandshake.mac(.acceptor, key: keys.sealing, opener: nc, acceptor: nonce)
        }
        guard let (nc, key) = answered, received.count >= PeerHandshake.openerProofBytes else { return step }
        guard PeerHandshake.isValid(received.prefix(PeerHandshake.openerProofBytes), .opener, key: key, opener: nc, acceptor: nonce)
        else {
            throw PeerSealError(.handshakeFailed, "the opener's proof was not made with our sealing key for this session")
        }
        let sessionKeys = PeerHandshake.sessionKeys(key: key, opener: nc, acceptor: nonce)
        step.session = PeerSession(
            clusterKey: key, sealer: PeerRecordSealer(key: sessionKeys.acceptorToOpener),
            opener: PeerRecordOpener(key: sessionKeys.openerToAcceptor))
        step.rest = Array(received[PeerHandshake.openerProofBytes...])
        received = []
        return step
    }
}
