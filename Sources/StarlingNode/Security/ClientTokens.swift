import Crypto

/// The tokens a client may present with `AUTH` (`--client-token-file`), kept as digests so that a
/// comparison takes the same time whatever the token and whichever entry matches
/// (docs/PROTOCOL.md, "Authentication").
public struct ClientTokens {
    /// Tokens are printable text without spaces, as `AUTH <token>` carries them.
    public static let maxTokenBytes = 512
    private let digests: [SHA256Digest]

    public init(_ tokens: [String]) {
        precondition(!tokens.isEmpty, "at least one token")
        digests = tokens.map { SHA256.hash(data: Array($0.utf8)) }
    }

    /// Reads and checks a token file (see `SecretFile` for what is refused).
    public static func load(path: String) throws(SecretFileError) -> ClientTokens {
        let tokens = try SecretFile.entries(path: path, what: "client token")
        for (index, token) in tokens.enumerated() {
            guard token.utf8.count <= maxTokenBytes, token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw SecretFileError(
                    path, "token \(index + 1) must be 1–\(maxTokenBytes) printable ASCII characters without spaces")
            }
        }
        return ClientTokens(tokens)
    }

    /// Whether `token` is one of them. Every entry is compared, each in constant time
    /// (swift-crypto's digest equality), so the time says nothing about which one matched or how
    /// much of it.
    public func accepts(_ token: some Sequence<UInt8>) -> Bool {
        let presented = SHA256.hash(data: Array(token))
        var matched = false
        for digest in digests where digest == presented { matched = true }
        return matched
    }
}
