/// Writes the numbers and bodies of the client protocol's lines (docs/PROTOCOL.md): the
/// counterpart of `LineFields` and `LineFramer`, used by `ClientRequest` and `ClientResponse`.
extension Array where Element == UInt8 {
    /// Appends the decimal digits of a non-negative `value` (a length on the wire) without
    /// building a String.
    public mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0, "a length is never negative")
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Appends the end of a framed line of the job protocol: `<length>\r\n<body>\r\n` (the same
    /// for `SUBMIT`, `OK`, `FAIL` and `STATUS`).
    public mutating func appendLengthAndBody(_ body: some Collection<UInt8>) {
        appendDecimal(body.count)
        append(0x0D)
        append(0x0A)
        append(contentsOf: body)
        append(0x0D)
        append(0x0A)
    }
}
