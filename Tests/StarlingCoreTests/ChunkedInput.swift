/// `input` cut into consecutive pieces of the given sizes (cycled; the last may be shorter, and a
/// size of 0 is an empty piece): how the decoder and framer tests show that what comes out does
/// not depend on how bytes arrive.
func cut(_ input: [UInt8], into sizes: [Int]) -> [ArraySlice<UInt8>] {
    precondition(sizes.allSatisfy { $0 >= 0 } && sizes.contains { $0 > 0 }, "sizes are not negative, and one is positive")
    var pieces: [ArraySlice<UInt8>] = []
    var offset = 0
    while offset < input.count {
        let size = min(sizes[pieces.count % sizes.count], input.count - offset)
        pieces.append(input[offset..<(offset + size)])
        offset += size
    }
    return pieces
}
