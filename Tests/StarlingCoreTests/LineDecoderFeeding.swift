import Testing
import StarlingCore

// How the decoder tests feed a `LineDecoder` (`ClientRequestDecoder`, `ClientResponseDecoder`):
// in chunks, draining after each, and every which way, to show that items do not depend on how
// the bytes are cut.

/// Feeds `input` to `decoder` in chunks of the given sizes (cycled), taking every item after each
/// chunk and checking that no more than `bound` bytes stay buffered then.
func feed<Grammar>(
    _ input: [UInt8], to decoder: LineDecoder<Grammar>, chunks: [Int] = [Int.max], bound: Int,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Grammar.Decoded] {
    var decoder = decoder
    var out: [Grammar.Decoded] = []
    for piece in cut(input, into: chunks) {
        decoder.append(piece)
        while let item = decoder.next() { out.append(item) }
        #expect(decoder.bufferedByteCount <= bound, sourceLocation: sourceLocation)
    }
    return out
}

/// Feeds `input` to copies of the fresh `decoder` whole, a byte at a time, in odd chunks and, with
/// `everySplit`, split in two at every byte boundary; all must agree. The items of the whole.
func feedAllWays<Grammar>(
    _ input: [UInt8], to decoder: LineDecoder<Grammar>, bound: Int, everySplit: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Grammar.Decoded] where Grammar.Decoded: Equatable {
    func feeding(_ chunks: [Int]) -> [Grammar.Decoded] {
        feed(input, to: decoder, chunks: chunks, bound: bound, sourceLocation: sourceLocation)
    }
    let whole = feeding([Int.max])
    #expect(feeding([1]) == whole, "byte at a time", sourceLocation: sourceLocation)
    #expect(feeding([2, 3, 7]) == whole, "odd chunks", sourceLocation: sourceLocation)
    if everySplit {
        for split in 0...input.count where feeding([max(split, 1), Int.max]) != whole {
            Issue.record("split at \(split) of \(input.count) differs", sourceLocation: sourceLocation)
            break
        }
    }
    return whole
}
