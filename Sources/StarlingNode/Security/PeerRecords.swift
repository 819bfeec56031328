import Crypto
import Foundation
import StarlingCore

/// The records of a sealed peer link, after `PeerHandshake` (docs/SECURITY.md, "Authenticated
/// peer links"): every byte of the plain frame stream travels in them.
///
/// ```
/// record = length u32 (plaintext bytes, ≤ maxPlaintextBytes) | ciphertext (length bytes) | tag (16 bytes)
/// ```
///
/// AES-256-GCM with the direction's session key; the nonce is the record's number on this
/// connection in this direction (`CounterNonce`, from 0), never sent, so a record dropped,
/// reordered or replayed does not open; the length is authenticated as associated data. A writer
/// seals what one write carries as one record, split at `maxPlaintextBytes`: records follow
/// writes, not frames. AES-GCM rather than the heartbeats' ChaCha20-Poly1305 because records are
/// the job path's bulk, and with the AES instructions of server CPUs it seals and opens a record
/// of 1.3 KB in about 4.1 µs instead of 4.9, and one of 1 MiB in 0.3 ms instead of 2.2
/// (docs/SECURITY.md).
public struct PeerRecordSealer {
    /// Larger writes are split; the opener refuses a longer record before buffering it.
    public static let maxPlaintextBytes = 1 << 20
    public static let headerBytes = 4
    public static let tagBytes = 16

    private let key: SymmetricKey
    private var counter: UInt64 = 0

    init(key: SymmetricKey) {
        self.key = key
    }

    /// Appends `plaintext` to `out` as records (none for no bytes).
    public mutating func seal(_ plaintext: [UInt8], into out: inout [UInt8]) {
        var start = 0
        while start < plaintext.count {
            let end = min(start + Self.maxPlaintextBytes, plaintext.count)
            sealRecord(plaintext[start..<end], into: &out)
            start = end
        }
    }

    private mutating func sealRecord(_ chunk: ArraySlice<UInt8>, into out: inout [UInt8]) {
        let headerStart = out.count
        out.appendBigEndian(UInt32(chunk.count))
        let nonce = AES.GCM.Nonce(counter: counter)
        // 2⁶⁴ records is out of reach; a wrapped counter would reuse a nonce, so it stops here.
        precondition(counter < .max, "peer record counter exhausted")
        counter += 1
        // AES-GCM fails only for a key or nonce of the wrong size, which these never are.
        let box = try! AES.GCM.seal(chunk, using: key, nonce: nonce, authenticating: out[headerStart...])
        // After the nonce, the combined box is the ciphertext and then the tag: one copy. A box
        // with a 12-byte nonce always has `combined`.
        out.appendBytes(of: box.combined!.dropFirst(CounterNonce.length))
    }
}

/// Opens the records of one direction of a sealed peer link, as they arrive in any cuts, and
/// hands on their plaintext. Every error is fatal: the caller closes the connection.
public struct PeerRecordOpener {
    private static let retainedCapacity = 64 * 1024

    private let key: SymmetricKey
    private var counter: UInt64 = 0
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var head = 0
    private var failure: PeerSealError?
    /// Nonce, ciphertext and tag of the record being opened, as the box takes them: reused, so
    /// opening a record copies its bytes once into storage that is already there.
    private var combined = Data()

    init(key: SymmetricKey) {
        self.key = key
    }

    /// Bytes received and not yet opened (at most one record's).
    public var bufferedByteCount: Int { buffer.count - head }

    /// Feeds bytes as they arrive; appends the plaintext of every record they complete.
    public mutating func open(_ bytes: some Collection<UInt8>, into plaintext: inout [UInt8]) throws(PeerSealError) {
        if let failure { throw failure }
        if head > 0, head * 2 > buffer.count {
            buffer.removeSubrange(0..<head)
            head = 0
        }
        buffer.append(contentsOf: bytes)
        while buffer.count - head >= PeerRecordSealer.headerBytes {
            var length = 0
            for index in 0..<PeerRecordSealer.headerBytes { length = length << 8 | Int(buffer[head + index]) }
            guard length <= PeerRecordSealer.maxPlaintextBytes else {
                throw fail(.recordOversized, "a record announces \(length) bytes, over \(PeerRecordSealer.maxPlaintextBytes)")
            }
            let bodyStart = head + PeerRecordSealer.headerBytes
            let end = bodyStart + length + PeerRecordSealer.tagBytes
            guard buffer.count >= end else {
                // Room for the whole record at once, rather than doubling towards it.
                let needed = end - head
                if buffer.capacity - head < needed {
                    if head > 0 {
                        buffer.removeSubrange(0..<head)
                        head = 0
                    }
                    buffer.reserveCapacity(needed)
                }
                return
            }
            combined.removeAll(keepingCapacity: true)
            combined.append(contentsOf: CounterNonce.bytes(counter: counter))
            combined.append(contentsOf: buffer[bodyStart..<end])
            do {
                // The box shares `combined`'s storage and is gone before it is written again.
                let opened = try AES.GCM.open(
                    AES.GCM.SealedBox(combined: combined), using: key, authenticating: buffer[head..<bodyStart])
                plaintext.appendBytes(of: opened)
                if combined.count > Self.retainedCapacity { combined = Data() }
            } catch {
                throw fail(.recordUnopened, "record \(counter) does not open with this session's key")
            }
            counter += 1
            head = end
        }
        if head == buffer.count {
            if buffer.capacity > Self.retainedCapacity { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            head = 0
        }
    }

    private mutating func fail(_ kind: PeerSealError.Kind, _ description: String) -> PeerSealError {
        let error = PeerSealError(kind, description)
        failure = error
        buffer = []
        combined = Data()
        head = 0
        return error
    }
}

extension [UInt8] {
    /// Appends a `Data` (or any contiguous bytes) with one copy.
    fileprivate mutating func appendBytes(of data: some ContiguousBytes) {
        data.withUnsafeBytes { raw in append(contentsOf: raw) }
    }
}
