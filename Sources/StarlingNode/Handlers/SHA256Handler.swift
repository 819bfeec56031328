import Crypto
import StarlingCore
import StarlingUV

/// The `sha256` built-in: answers with the lowercase hex SHA-256 digest of the payload (64 ASCII
/// characters). Payloads up to `inlineLimitBytes` are hashed on the loop thread (well under a
/// millisecond); larger ones on libuv's thread pool, in chunks, stopping early on timeout or cancel.
final class SHA256Handler: JobHandler {
    static let inlineLimitBytes = 64 * 1024
    static let chunkBytes = 1 << 20

    private let loop: EventLoop
    private let timeoutMs: Int64

    init(loop: EventLoop, timeoutMs: Int64) {
        self.loop = loop
        self.timeoutMs = timeoutMs
    }

    func start(key: JobKey, payload: [UInt8], completion: @escaping (JobOutcome) -> Void) -> RunningJob {
        guard payload.count > Self.inlineLimitBytes else {
            return ImmediateJob(loop: loop, outcome: .succeeded(Self.hexDigest(of: payload)), completion: completion)
        }
        return BackgroundJob(loop: loop, name: "sha256", timeoutMs: timeoutMs, body: { stop in
            var hasher = SHA256()
            var offset = 0
            while offset < payload.count {
                if stop.isRaised { return .failed("sha256: stopped") }
                let next = min(offset + Self.chunkBytes, payload.count)
                hasher.update(data: payload[offset..<next])
                offset = next
            }
            return .succeeded(Self.hex(hasher.finalize()))
        }, completion: completion)
    }

    static func hexDigest(of payload: [UInt8]) -> [UInt8] {
        hex(SHA256.hash(data: payload))
    }

    private static func hex(_ digest: SHA256.Digest) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(SHA256.byteCount * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}
