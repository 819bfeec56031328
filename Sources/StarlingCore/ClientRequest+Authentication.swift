/// A client token, as `AUTH <token>` carries it (docs/PROTOCOL.md, "Authentication"): 1–512 bytes
/// of printable ASCII without spaces (`!` to `~`). It is a secret: its description, debug
/// description and mirror never show it, so printing a request, a configuration or an error
/// cannot put it in a log.
public struct ClientToken: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The longest token, in bytes (on the wire and in a node's `--client-token-file`).
    public static let maxBytes = 512

    /// The token itself: what `AUTH` sends and what a node checks.
    public let value: String

    /// Why some text is not a token. The description says what is wrong, never the token.
    public enum Invalid: Error, Hashable, Sendable, CustomStringConvertible {
        case empty
        case tooLong(Int)
        /// A byte that is not printable ASCII or is a space, at this 1-based byte position.
        case badByte(position: Int)

        public var description: String {
            switch self {
            case .empty: "token is empty"
            case .tooLong(let count): "token has \(count) bytes, at most \(ClientToken.maxBytes) allowed"
            case .badByte(let position):
                "token byte \(position) is not printable ASCII ('!' to '~', no spaces or line ends)"
            }
        }
    }

    public init(_ value: String) throws(Invalid) {
        try Self.check(value.utf8)
        self.value = value
    }

    /// A token read from the wire, checked as bytes.
    public init(bytes: some Collection<UInt8>) throws(Invalid) {
        try Self.check(bytes)
        value = String(decoding: bytes, as: UTF8.self)
    }

    private static func check(_ bytes: some Collection<UInt8>) throws(Invalid) {
        if bytes.isEmpty { throw .empty }
        if let index = bytes.firstIndex(where: { !(0x21...0x7E).contains($0) }) {
            throw .badByte(position: bytes.distance(from: bytes.startIndex, to: index) + 1)
        }
        guard bytes.count <= maxBytes else { throw .tooLong(bytes.count) }
    }

    public var description: String { "<token>" }
    public var debugDescription: String { "<token>" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

/// The authentication rule of one client connection (docs/PROTOCOL.md, "Authentication"), without
/// I/O: the shell feeds it every decoded item before handling it, and does what it says.
///
/// - When the process has tokens (`required`), the first command must be an `AUTH` whose token
///   `accepts` takes: `.welcome`. Anything else first — another command, a malformed `AUTH`, an
///   undecodable line, a wrong token — is `.refuse`: answer `ERR - UNAUTHORIZED` and close once it
///   is written. Blank lines are no command (the decoder skips them).
/// - Without tokens every command passes, and an `AUTH` with any well-formed token is `.welcome`,
///   so a client configured with a token works against an open cluster.
/// - `AUTH` may come again at any time; each is checked against the tokens of that moment: right,
///   `.welcome` again; wrong, `.refuse` (so a connection cannot try token after token).
/// - Requests pipelined after `AUTH` come out of the decoder after it, so they pass or are refused
///   by what it decided.
public struct ClientAuthentication: Sendable {
    /// The counter a refusal is rejected under (in `STATUS`'s `rejected`).
    public static let reason = "client_unauthorized"

    /// What to do with an item.
    public enum Step: Hashable, Sendable {
        /// Handle it as without authentication.
        case handle(ClientRequestDecoder.Decoded)
        /// An accepted `AUTH`: answer `WELCOME`.
        case welcome
        /// Count it under `reason`, log `detail` (never the token), answer `answer` (an
        /// `ERR - UNAUTHORIZED`) and close once it is written.
        case refuse(answer: ClientResponse, detail: String)
    }

    /// Whether the connection may send other commands: from the start without tokens, after
    /// `WELCOME` with them.
    public private(set) var isAuthenticated: Bool

    public init(required: Bool) {
        isAuthenticated = !required
    }

    public mutating func step(_ item: ClientRequestDecoder.Decoded, accepts: (ClientToken) -> Bool) -> Step {
        switch item {
        case .request(.auth(let token)):
            guard accepts(token) else {
                isAuthenticated = false
                return .refuse(answer: Self.unauthorized("token not accepted"), detail: "AUTH with a token not accepted")
            }
            isAuthenticated = true
            return .welcome
        case .error(.malformedAuth(let message)) where !isAuthenticated:
            return .refuse(answer: Self.unauthorized(message), detail: "malformed AUTH: \(message)")
        case _ where isAuthenticated:
            return .handle(item)
        case .request(let request):
            return .refuse(answer: Self.unauthorized(Self.firstCommandMessage), detail: "\(request.command) before AUTH")
        case .error(let error):
            return .refuse(
                answer: Self.unauthorized(Self.firstCommandMessage), detail: "unreadable input before AUTH (\(error.reason))")
        }
    }

    static let firstCommandMessage = "authentication required: the first command must be AUTH <token>"

    private static func unauthorized(_ message: String) -> ClientResponse {
        .error(key: nil, code: .unauthorized, message: message)
    }
}

extension ClientRequest {
    /// The request's command word, for a message (never its arguments).
    public var command: String {
        switch self {
        case .auth: "AUTH"
        case .ping: "PING"
        case .status: "STATUS"
        case .shards: "SHARDS"
        case .submit: "SUBMIT"
        }
    }
}
