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
}
