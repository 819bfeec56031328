/// Reads a payload that must be one non-negative decimal integer (sleep's milliseconds, spin's
/// microseconds): ASCII digits, surrounding whitespace ignored, at most `maximum`.
enum DecimalPayload {
    /// The value, or nil when the payload is not such a number or exceeds `maximum`.
    static func parse(_ payload: [UInt8], maximum: Int64) -> Int64? {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
        guard let first = payload.firstIndex(where: { !isSpace($0) }),
              let last = payload.lastIndex(where: { !isSpace($0) })
        else { return nil }
        let digits = payload[first...last]
        // 18 digits always fit in Int64, so the arithmetic below cannot overflow.
        guard digits.count <= 18, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let value = digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
        return value <= maximum ? value : nil
    }
}
