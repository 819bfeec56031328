/// The space-separated fields of a header line of the client protocol (docs/PROTOCOL.md,
/// "Framing": fields are separated by single spaces, readers tolerate runs of spaces), found
/// without allocating or copying: as `split(separator: " ")` gives them, how many there are and
/// where the first four are, as ranges of the line (`line[fields[1]]`). Also how the fields that
/// both sides read are read: lengths, and fields quoted in messages.
public struct LineFields {
    /// How many fields the line has (0 for a blank line).
    public private(set) var count = 0
    private var ranges: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
    /// Where the last field ends: the line without its trailing spaces.
    private var end = 0

    private static let space = UInt8(ascii: " ")

    public init(_ line: ArraySlice<UInt8>) {
        var index = line.startIndex
        while index < line.endIndex {
            guard line[index] != Self.space else {
                index += 1
                continue
            }
            let start = index
            while index < line.endIndex, line[index] != Self.space { index += 1 }
            switch count {
            case 0: ranges.0 = start..<index
            case 1: ranges.1 = start..<index
            case 2: ranges.2 = start..<index
            case 3: ranges.3 = start..<index
            default: break
            }
            count += 1
            end = index
        }
    }

    /// Where field `number` (0–3, which must exist) is in the line.
    public subscript(number: Int) -> Range<Int> {
        precondition(number >= 0 && number < min(count, 4), "field \(number) of \(count)")
        switch number {
        case 0: return ranges.0
        case 1: return ranges.1
        case 2: return ranges.2
        default: return ranges.3
        }
    }

    /// From the start of field `number` (0–3, which must exist) to the end of the last field: a
    /// last field that may hold spaces, such as the message of an `ERR`.
    public func rest(from number: Int) -> Range<Int> {
        self[number].lowerBound..<end
    }

    /// Why a length field cannot be read; `message` is what the answer or log says.
    public struct BadLength: Error, Hashable, Sendable {
        public let message: String

        public init(message: String) { self.message = message }
    }

    /// A length field: decimal digits only (no sign, no spaces), no larger than `UInt64.max`.
    public static func length(_ field: ArraySlice<UInt8>) throws(BadLength) -> UInt64 {
        guard field.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw BadLength(message: "length \(quoted(field)) is not a decimal number of bytes")
        }
        var length: UInt64 = 0
        for digit in field {
            let (times10, o1) = length.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw BadLength(message: "length \(quoted(field)) is out of range") }
            length = sum
        }
        return length
    }

    /// `'text'` for a message about a field: at most 32 characters, control and non-ASCII
    /// characters escaped, so hostile bytes never reach a log or an answer as they are.
    public static func quoted(_ bytes: ArraySlice<UInt8>) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == 32 { out += "..."; break }
            out += (0x20..<0x7F).contains(scalar.value) ? String(scalar) : scalar.escaped(asASCII: true)
            count += 1
        }
        return "'\(out)'"
    }
}
