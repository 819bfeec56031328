import Crypto
import StarlingCore

/// The tokens a client may present with `AUTH` (`--client-token-file`), kept as digests so that a
/// comparison takes the same time whatever the token and whichever entry matches
/// (docs/PROTOCOL.md, "Authentication"). What a token may be is `ClientToken`'s rule, the one
/// `AUTH` is decoded with.
public struct ClientTokens {
    private let digests: [SHA256Digest]

    public init(_ tokens: [ClientToken]) {
        precondition(!tokens.isEmpty, "at least one token")
        digests = tokens.map { SHA256.hash(data: Array($0.value.utf8)) }
    }

    /// Reads and checks a token file (see `SecretFile` for what is refused).
    public static func load(path: String) throws(SecretFileError) -> ClientTokens {
        ClientTokens(try read(path: path))
    }

    /// The tokens of a file in their order: a client (`--token-file` of `starling submit` and
    /// `starling status`) sends the first, so one file can serve both sides.
    public static func read(path: String) throws(SecretFileError) -> [ClientToken] {
        var tokens: [ClientToken] = []
        for (index, entry) in try SecretFile.entries(path: path, what: "client token").enumerated() {
            do {
                tokens.append(try ClientToken(entry))
            } catch {
                throw SecretFileError(path, "token \(index + 1): \(error)")
            }
        }
        return tokens
    }

    /// Whether `token` is one of them. Every entry is compared, each in constant time
    /// (swift-crypto's digest equality), so the time says nothing about which one matched or how
    /// much of it.
    public func accepts(_ token: ClientToken) -> Bool {
        let presented = SHA256.hash(data: Array(token.value.utf8))
        var matched = false
        for digest in digests where digest == presented { matched = true }
        return matched
    }
}
