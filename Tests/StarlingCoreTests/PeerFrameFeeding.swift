import StarlingCore
import Testing

// How the peer codec tests feed a `PeerFrameDecoder`: in chunks, draining after each, checking
// its buffer bound, and recording the error that ends the input.

/// What a decoder made of some input: the messages, then the error if one was thrown.
struct DecodedFrames: Equatable {
    var messages: [PeerMessage] = []
    var error: PeerDecodingError?
}

/// Feeds `input` in chunks of the given sizes (cycled), draining after each chunk and checking
/// the buffer bound whenever the decoder asks for more.
func decode(_ input: [UInt8], chunks: [Int] = [Int.max], maxFrameBytes: Int = PeerFrameDecoder.defaultMaxFrameBytes) -> DecodedFrames {
    var decoder = PeerFrameDecoder(maxFrameBytes: maxFrameBytes)
    var out = DecodedFrames()
    for piece in cut(input, into: chunks) {
        decoder.append(piece)
        do {
            while let message = try decoder.next() { out.messages.append(message) }
            #expect(decoder.bufferedByteCount < PeerMessageCodec.headerBytes + maxFrameBytes)
        } catch {
            out.error = error
            // Sticky: the same error again, input ignored, nothing buffered.
            #expect(throws: error) { try decoder.next() }
            decoder.append([1, 2, 3, 4, 5])
            #expect(decoder.isClosed && decoder.bufferedByteCount == 0)
            return out
        }
    }
    return out
}
