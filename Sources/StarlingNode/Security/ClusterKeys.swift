import Crypto
import Foundation

/// The keys of a closed cluster (`--cluster-key-file`): the first seals what this process sends,
/// every one opens what it receives, so keys rotate without a flag day (docs/SECURITY.md, "Key
/// rotation"). Each key is 256 random bits, written as one line of base64.
public struct ClusterKeys {
    public static let keyBytes = 32

    /// Seals heartbeats and proves this process on new peer links.
    public let sealing: SymmetricKey
    /// Every key accepted, `sealing` first.
    public let all: [SymmetricKey]

    public init(_ keys: [SymmetricKey]) {
        precondition(!keys.isEmpty, "a cluster needs at least one key")
        sealing = keys[0]
        all = keys
    }

    /// Reads and checks a key file (see `SecretFile` for what is refused).
    public static func load(path: String) throws(SecretFileError) -> ClusterKeys {
        var keys: [SymmetricKey] = []
        for (index, line) in try SecretFile.entries(path: path, what: "cluster key").enumerated() {
            guard let bytes = Data(base64Encoded: line), bytes.count == keyBytes else {
                throw SecretFileError(
                    path, "key \(index + 1) is not \(keyBytes) bytes of base64 (make one with `starling keygen`)")
            }
            keys.append(SymmetricKey(data: bytes))
        }
        return ClusterKeys(keys)
    }

    /// A new random key, as one line of a key file.
    public static func generateLine() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }
}
