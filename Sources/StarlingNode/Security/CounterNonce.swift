import Crypto
import StarlingCore

/// The nonce of a key that seals under a counter that never repeats (a heartbeat sender's own
/// key, one direction of a peer link): four zero bytes, then the u64 counter big-endian, so that
/// no (key, nonce) pair is ever used twice (docs/SECURITY.md).
enum CounterNonce {
    /// The size of both AEADs' nonces; a sealed box's `combined` starts with it.
    static let length = 12

    static func bytes(counter: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0, 0]
        bytes.appendBigEndian(counter)
        return bytes
    }
}

extension ChaChaPoly.Nonce {
    init(counter: UInt64) {
        // Twelve bytes are always a valid ChaChaPoly nonce.
        self = try! ChaChaPoly.Nonce(data: CounterNonce.bytes(counter: counter))
    }
}

extension AES.GCM.Nonce {
    init(counter: UInt64) {
        // Twelve bytes are always a valid AES-GCM nonce.
        self = try! AES.GCM.Nonce(data: CounterNonce.bytes(counter: counter))
    }
}
