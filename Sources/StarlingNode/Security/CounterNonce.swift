import Crypto
import StarlingCore

extension ChaChaPoly.Nonce {
    /// A ChaChaPoly nonce's size; a sealed box's `combined` starts with it.
    static let length = 12

    /// Four zero bytes, then `counter` big-endian: the nonce of a key that seals under a counter
    /// that never repeats (a heartbeat sender's own key, one direction of a peer link), so that
    /// no (key, nonce) pair is ever used twice (docs/SECURITY.md).
    init(counter: UInt64) {
        // Twelve bytes are always a valid ChaChaPoly nonce.
        self = try! ChaChaPoly.Nonce(data: Self.bytes(counter: counter))
    }

    /// The bytes of `init(counter:)`'s nonce.
    static func bytes(counter: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0, 0]
        bytes.appendBigEndian(counter)
        return bytes
    }
}
