import Crypto
import StarlingCore

/// What a sealed datagram carries once opened (docs/SECURITY.md, "Sealed heartbeats").
public struct SealedDatagram: Equatable, Sendable {
    public enum Content: Equatable, Sendable {
        /// A heartbeat (`HeartbeatCodec` bytes); `echo` is set when it answers a challenge.
        case heartbeat(body: [UInt8], echo: ChallengeNonce?)
        /// "Prove you are live": `target` answers by sealing its latest heartbeat again, with a new
        /// counter and `nonce` echoed, and sends it to `replyTo`.
        case challenge(nonce: ChallengeNonce, target: NodeID, replyTo: NodeAddress)
    }

    /// The sealing process's identity (drawn at its start).
    public var sender: NodeID
    /// The sender's seal counter: 1 for its first sealed datagram, +1 for each one after.
    public var counter: UInt64
    /// The address the sender sent it to, so that a datagram captured on its way to one member
    /// means nothing to another.
    public var destination: NodeAddress
    public var content: Content

    public init(sender: NodeID, counter: UInt64, destination: NodeAddress, content: Content) {
        self.sender = sender
        self.counter = counter
        self.destination = destination
        self.content = content
    }
}

/// Why a datagram did not open. `reason` is the counter's name in `STATUS`.
public enum HeartbeatSealError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A plain `HeartbeatCodec` heartbeat reached a process with a cluster key.
    case unsealed
    /// Neither sealed nor a plain heartbeat.
    case badMagic
    case unsupportedVersion(UInt8)
    case oversized(Int)
    /// No key opens it: another key, tampered with, or truncated.
    case unopened(Int)
    /// It opened but what is inside is not well formed (only a key holder can send that).
    case malformed(String)

    public var reason: String {
        switch self {
        case .unsealed: "heartbeat_unsealed"
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .oversized: "oversized"
        case .unopened: "heartbeat_unopened"
        case .malformed: "heartbeat_malformed"
        }
    }

    public var description: String {
        switch self {
        case .unsealed: "a plain heartbeat, but this cluster is keyed (does the sender have the cluster key?)"
        case .badMagic: "not a Starling heartbeat (bad magic)"
        case .unsupportedVersion(let v): "sealed heartbeat version \(v) is not supported (this build speaks \(HeartbeatSeal.version))"
        case .oversized(let n): "sealed datagram of \(n) bytes is over the \(HeartbeatSeal.maxDatagramBytes)-byte limit"
        case .unopened(let n): "sealed datagram of \(n) bytes opens with none of the cluster keys (another key, tampered or truncated)"
        case .malformed(let why): "sealed datagram opened but is malformed: \(why)"
        }
    }
}

private struct SealedContentError: BinaryDecodingError {
    let why: String
    static func truncated(field: String) -> Self { .init(why: "ends inside '\(field)'") }
    static func badAddressFamily(_ family: UInt8) -> Self { .init(why: "address family \(family)") }
    static func badService(_ why: String) -> Self { .init(why: why) }
}

/// Seals and opens heartbeat datagrams with a cluster key: ChaChaPoly over the whole datagram.
///
/// ```
/// header, in clear and authenticated (27 bytes):
///   magic "SK" | version u8 | sender id 16 bytes | counter u64
/// sealed (ChaChaPoly ciphertext, then its 16-byte tag):
///   kind u8 (1 heartbeat, 2 challenge) | destination address
///   heartbeat: has echo u8 (0 or 1) | [echo nonce 16 bytes] | HeartbeatCodec datagram
///   challenge: nonce 16 bytes | target id 16 bytes | reply-to address
/// ```
/// Each datagram is sealed with a key of its sender's own, HKDF-SHA256(cluster key, salt
/// "starling heartbeat seal v1", info = sender id), under the nonce 0⁴ ‖ counter: the sender's
/// identity is unique per process start and its counter never repeats, so no (key, nonce) pair is
/// ever used twice, however many processes share the cluster key (a random 96-bit nonce would
/// make that only likely). A plain heartbeat starts "SH": the two can never be confused.
public enum HeartbeatSeal {
    public static let magic: [UInt8] = [0x53, 0x4B]  // "SK"
    public static let version: UInt8 = 1
    public static let headerBytes = 2 + 1 + 16 + 8
    public static let tagBytes = 16
    /// The most a sealed datagram adds to a heartbeat: header, kind, an IPv6 destination, the
    /// echo and the tag.
    public static let maxOverhead = headerBytes + 1 + 19 + 1 + 16 + tagBytes
    public static let maxDatagramBytes = HeartbeatCodec.maxDatagramBytes + maxOverhead
    private static let salt = Array("starling heartbeat seal v1".utf8)

    /// Whether `bytes` claims to be sealed (its magic), before any check.
    public static func isSealed(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: magic)
    }

    public static func seal(_ datagram: SealedDatagram, with clusterKey: SymmetricKey) -> [UInt8] {
        var senderKeys = HeartbeatSenderKeys()
        return seal(datagram, with: [clusterKey], senderKeys: &senderKeys)
    }

    /// Seals with the first of `clusterKeys`, through the sender's derived keys in `senderKeys`.
    public static func seal(
        _ datagram: SealedDatagram, with clusterKeys: [SymmetricKey], senderKeys: inout HeartbeatSenderKeys
    ) -> [UInt8] {
        let (keys, isKnown) = senderKeys.keys(of: datagram.sender, under: clusterKeys)
        if !isKnown { senderKeys.remember(keys, of: datagram.sender) }
        var header: [UInt8] = []
        header.reserveCapacity(headerBytes)
        header += magic
        header.append(version)
        header.appendNodeID(datagram.sender)
        header.appendBigEndian(datagram.counter)
        var plain: [UInt8] = []
        switch datagram.content {
        case .heartbeat(let body, let echo):
            plain.reserveCapacity(body.count + 40)
            plain.append(1)
            plain.appendNodeAddress(datagram.destination)
            if let echo {
                plain.append(1)
                plain.appendBigEndian(echo.high)
                plain.appendBigEndian(echo.low)
            } else {
                plain.append(0)
            }
            plain += body
        case .challenge(let nonce, let target, let replyTo):
            plain.append(2)
            plain.appendNodeAddress(datagram.destination)
            plain.appendBigEndian(nonce.high)
            plain.appendBigEndian(nonce.low)
            plain.appendNodeID(target)
            plain.appendNodeAddress(replyTo)
        }
        // The nonce is unique per (sender key, counter); seal cannot fail with a valid nonce.
        let box = try! ChaChaPoly.seal(plain, using: keys[0], nonce: ChaChaPoly.Nonce(counter: datagram.counter), authenticating: header)
        // After the nonce, the combined box is the ciphertext and then the tag.
        header.append(contentsOf: box.combined.dropFirst(CounterNonce.length))
        return header
    }

    /// Opens `bytes` with the first of `keys` that authenticates it.
    public static func open(_ bytes: [UInt8], keys: [SymmetricKey]) -> Result<SealedDatagram, HeartbeatSealError> {
        var senderKeys = HeartbeatSenderKeys()
        return open(bytes, keys: keys, senderKeys: &senderKeys)
    }

    /// Opens `bytes` with the first of `keys` that authenticates it, through the sender's derived
    /// keys in `senderKeys` (remembered there once a datagram opens).
    public static func open(
        _ bytes: [UInt8], keys: [SymmetricKey], senderKeys: inout HeartbeatSenderKeys
    ) -> Result<SealedDatagram, HeartbeatSealError> {
        guard isSealed(bytes) else {
            return .failure(bytes.starts(with: HeartbeatCodec.magic) ? .unsealed : .badMagic)
        }
        guard bytes.count <= maxDatagramBytes else { return .failure(.oversized(bytes.count)) }
        guard bytes.count > magic.count else { return .failure(.unopened(bytes.count)) }
        guard bytes[magic.count] == version else { return .failure(.unsupportedVersion(bytes[magic.count])) }
        guard bytes.count >= headerBytes + tagBytes else { return .failure(.unopened(bytes.count)) }
        var reader = BinaryReader<SealedContentError>(bytes[3..<headerBytes])
        guard let sender = try? reader.nodeID("sender"), let counter = try? reader.integer(UInt64.self, "counter"),
              let box = try? ChaChaPoly.SealedBox(
                nonce: ChaChaPoly.Nonce(counter: counter), ciphertext: bytes[headerBytes..<(bytes.count - tagBytes)],
                tag: bytes[(bytes.count - tagBytes)...])
        else { return .failure(.unopened(bytes.count)) }
        let header = bytes[..<headerBytes]
        let (derived, isKnown) = senderKeys.keys(of: sender, under: keys)
        for key in derived {
            guard let plain = try? ChaChaPoly.open(box, using: key, authenticating: header) else { continue }
            if !isKnown { senderKeys.remember(derived, of: sender) }
            do {
                return .success(try content(Array(plain), sender: sender, counter: counter))
            } catch {
                return .failure(.malformed(error.why))
            }
        }
        return .failure(.unopened(bytes.count))
    }

    private static func content(_ plain: [UInt8], sender: NodeID, counter: UInt64) throws(SealedContentError) -> SealedDatagram {
        var reader = BinaryReader<SealedContentError>(plain[...])
        let kind = try reader.byte("kind")
        let destination = try reader.address("destination")
        switch kind {
        case 1:
            let hasEcho = try reader.byte("has echo")
            var echo: ChallengeNonce?
            switch hasEcho {
            case 0: break
            case 1: echo = ChallengeNonce(high: try reader.integer(UInt64.self, "echo"), low: try reader.integer(UInt64.self, "echo"))
            default: throw SealedContentError(why: "echo flag \(hasEcho)")
            }
            let body = Array(try reader.bytes(reader.remaining, "heartbeat"))
            return SealedDatagram(sender: sender, counter: counter, destination: destination, content: .heartbeat(body: body, echo: echo))
        case 2:
            let nonce = ChallengeNonce(high: try reader.integer(UInt64.self, "nonce"), low: try reader.integer(UInt64.self, "nonce"))
            let target = try reader.nodeID("target")
            let replyTo = try reader.address("reply-to")
            guard reader.remaining == 0 else { throw SealedContentError(why: "\(reader.remaining) bytes after the challenge") }
            return SealedDatagram(
                sender: sender, counter: counter, destination: destination,
                content: .challenge(nonce: nonce, target: target, replyTo: replyTo))
        default:
            throw SealedContentError(why: "kind \(kind)")
        }
    }

    /// The key a sender seals with: its own, derived from the cluster key and its identity.
    static func senderKey(_ clusterKey: SymmetricKey, sender: NodeID) -> SymmetricKey {
        var info: [UInt8] = []
        info.appendNodeID(sender)
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: clusterKey, salt: salt, info: info, outputByteCount: 32)
    }
}
