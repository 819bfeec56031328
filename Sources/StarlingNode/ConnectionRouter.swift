import StarlingCore

/// What an accepted TCP connection speaks. Clients and peers share one port, so a connection says
/// what it is only through its first bytes (docs/HANDBOOK.md, "Connections").
public enum ConnectionProtocol: Sendable, Equatable, CaseIterable {
    /// Job-plane frames from another Starling process of a closed cluster: the handshake of
    /// `PeerHandshake`, starting with its magic `\0STL`, then the frames in sealed records.
    case sealedPeerFrames
    /// Job-plane frames from another Starling process (`PeerMessageCodec`): each frame starts with
    /// its 4-byte length, and frames are far below 16 MiB, so the first byte is 0.
    case peerFrames
    /// The client protocol of docs/PROTOCOL.md: text lines, never starting with a 0 byte.
    case clientLines
}

/// Tells one protocol from the first bytes of a connection.
///
/// `recognise` sees every byte read so far (at least one, at most `ConnectionRouter.maxPrefixBytes`)
/// and answers `.needsMoreBytes` while they could still go either way, e.g. a multi-byte magic of
/// which only a part has arrived. It must decide by `maxPrefixBytes` bytes: with that many, a
/// recogniser that still needs more is passed over.
public struct ProtocolRecogniser: Sendable {
    public enum Verdict: Sendable, Equatable {
        case matches
        case doesNotMatch
        case needsMoreBytes
    }

    public let recognised: ConnectionProtocol
    public let recognise: @Sendable (ArraySlice<UInt8>) -> Verdict

    public init(_ recognised: ConnectionProtocol, recognise: @escaping @Sendable (ArraySlice<UInt8>) -> Verdict) {
        self.recognised = recognised
        self.recognise = recognise
    }

    /// A protocol whose connections start with `magic` (at most `maxPrefixBytes` bytes): it waits
    /// while the bytes so far are a proper prefix of it.
    public init(_ recognised: ConnectionProtocol, magic: [UInt8]) {
        precondition(!magic.isEmpty && magic.count <= ConnectionRouter.maxPrefixBytes, "magic of 1...maxPrefixBytes bytes")
        self.init(recognised) { prefix in
            if prefix.count < magic.count {
                magic.starts(with: prefix) ? .needsMoreBytes : .doesNotMatch
            } else {
                prefix.starts(with: magic) ? .matches : .doesNotMatch
            }
        }
    }
}

/// Names the protocol of a new connection from its first bytes: the recognisers are asked in
/// order, and the first that matches wins.
///
/// A recogniser that needs more bytes holds the decision, even if a later one would match now, so
/// the more specific goes first. Adding a protocol means a case of `ConnectionProtocol`, its
/// recogniser in `standard`, and its handler where the worker routes connections (the compiler
/// asks for that one). For example Gearman's binary requests start with `\0REQ`, whose first byte
/// is also a peer frame's: `ProtocolRecogniser(.gearman, magic: [0] + Array("REQ".utf8))` would go
/// before `.peerFrames` and make a connection that starts with 0 wait for its first four bytes.
/// HTTP (`GET `, `POST ` ...) would go before `.clientLines`, which takes any text.
public struct ConnectionRouter: Sendable {
    /// The most bytes any recogniser may need: waiting is bounded by this many bytes.
    public static let maxPrefixBytes = 32

    public enum Decision: Sendable, Equatable {
        case route(ConnectionProtocol)
        /// Some recogniser cannot tell yet: read more and ask again with every byte so far.
        case waitForMoreBytes
        /// No recogniser takes these bytes: close the connection.
        case unrecognised
    }

    /// In the order they are asked.
    public let recognisers: [ProtocolRecogniser]

    public init(recognisers: [ProtocolRecogniser]) {
        self.recognisers = recognisers
    }

    /// What a Starling process serves on its port today: sealed peer links, plain peer frames, then
    /// client lines. A connection starting with 0 waits for its first four bytes: the sealed
    /// magic's length prefix would announce a hello over a hello's limit, so no plain link starts so.
    public static let standard = ConnectionRouter(recognisers: [
        ProtocolRecogniser(.sealedPeerFrames, magic: PeerHandshake.magic),
        ProtocolRecogniser(.peerFrames, magic: [0]),
        ProtocolRecogniser(.clientLines) { prefix in prefix.first != 0 ? .matches : .doesNotMatch },
    ])

    /// Decides from the bytes read so far (all of them; only the first `maxPrefixBytes` are looked at).
    public func classify(_ bytes: [UInt8]) -> Decision {
        guard !bytes.isEmpty else { return .waitForMoreBytes }
        let prefix = bytes.prefix(Self.maxPrefixBytes)
        let canWait = prefix.count < Self.maxPrefixBytes
        for recogniser in recognisers {
            switch recogniser.recognise(prefix) {
            case .matches: return .route(recogniser.recognised)
            case .needsMoreBytes where canWait: return .waitForMoreBytes
            case .needsMoreBytes, .doesNotMatch: continue
            }
        }
        return .unrecognised
    }
}
