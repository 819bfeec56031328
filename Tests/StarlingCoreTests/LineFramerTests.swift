import Testing
import StarlingCore

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// What a framer gave, as owned values, so results can be compared.
private enum Got: Equatable {
    case line(String)
    case body([UInt8])
    case lineTooLong
    case unterminatedBody
}

/// Feeds `input` in chunks of the given sizes (cycled) and takes every frame after each chunk;
/// a line whose text starts with `BODY <n>` announces a body of `n` bytes, `SKIP <n>` a skipped one.
private func frames(_ input: [UInt8], chunks: [Int] = [Int.max], maxLine: Int = 32) -> [Got] {
    var framer = LineFramer(maxLineBytes: maxLine)
    var out: [Got] = []
    for piece in cut(input, into: chunks) {
        framer.append(piece)
        while let frame = framer.next() {
            switch frame {
            case .line(let line):
                let text = String(decoding: line, as: UTF8.self)
                out.append(.line(text))
                let fields = LineFields(line)
                if fields.count == 2, let length = try? LineFields.length(line[fields[1]]) {
                    if line[fields[0]].elementsEqual("BODY".utf8) { framer.expectBody(length: Int(length)) }
                    if line[fields[0]].elementsEqual("SKIP".utf8) { framer.skipBody(length: length) }
                }
            case .body(let body): out.append(.body(Array(body)))
            case .lineTooLong: out.append(.lineTooLong)
            case .unterminatedBody: out.append(.unterminatedBody)
            }
        }
        #expect(framer.bufferedByteCount <= max(maxLine, 100) + 1)
    }
    return out
}

private func framesAllWays(_ input: [UInt8], maxLine: Int = 32, sourceLocation: SourceLocation = #_sourceLocation) -> [Got] {
    let whole = frames(input, maxLine: maxLine)
    #expect(frames(input, chunks: [1], maxLine: maxLine) == whole, "byte at a time", sourceLocation: sourceLocation)
    #expect(frames(input, chunks: [2, 3, 7], maxLine: maxLine) == whole, "odd chunks", sourceLocation: sourceLocation)
    return whole
}

@Suite struct LineFramerTests {
    @Test func linesWithEitherLineEndAndBlankLines() {
        #expect(framesAllWays(bytes("A\r\nB\n\r\n\n  \nC\r\n")) == [
            .line("A"), .line("B"), .line(""), .line(""), .line("  "), .line("C"),
        ])
    }

    @Test func bodiesAreBinarySafeAndEndInEitherLineEnd() {
        let input = bytes("BODY 4\r\n") + [0x0A, 0x0D, 0x00, 0xFF] + bytes("\r\nBODY 0\n\nBODY 2\nhi\nEND\n")
        #expect(framesAllWays(input) == [
            .line("BODY 4"), .body([0x0A, 0x0D, 0x00, 0xFF]), .line("BODY 0"), .body([]), .line("BODY 2"), .body(bytes("hi")),
            .line("END"),
        ])
    }

    @Test func skippedBodiesAreCountedNotKept() {
        var framer = LineFramer(maxLineBytes: 32)
        framer.append(bytes("SKIP 1000000\r\nxyz"))
        #expect(framer.next() == .line(bytes("SKIP 1000000")[...]))
        framer.skipBody(length: 1_000_000)
        #expect(framer.bufferedByteCount == 0)
        for _ in 0..<10 {
            framer.append([UInt8](repeating: 0x0A, count: 99_999))
            #expect(framer.bufferedByteCount == 0)
            #expect(framer.next() == nil)
        }
        framer.append(bytes("abcdefg\r\nNEXT\r\n"))  // the last 7 of the million
        #expect(framer.next() == .line(bytes("NEXT")[...]))
        #expect(framer.next() == nil)
        #expect(framer.bufferedByteCount == 0)
        // Within what is already buffered, too.
        #expect(framesAllWays(bytes("SKIP 3\r\nabc\nAFTER\n")) == [.line("SKIP 3"), .line("AFTER")])
    }

    @Test func aLineOverTheLimitIsFatal() {
        let exactly = bytes(String(repeating: "a", count: 32))
        #expect(framesAllWays(exactly + bytes("\r\n")) == [.line(String(repeating: "a", count: 32))])
        #expect(framesAllWays(exactly + bytes("\n")) == [.line(String(repeating: "a", count: 32))])
        #expect(framesAllWays(exactly + bytes("a\r\nNEXT\r\n")) == [.lineTooLong])
        // With no line end at all, as soon as the line cannot fit any more.
        var framer = LineFramer(maxLineBytes: 32)
        framer.append(exactly + bytes("\r"))
        #expect(framer.next() == nil, "a CR may still be the line end")
        framer.append(bytes("b"))
        #expect(framer.next() == .lineTooLong)
        #expect(framer.isClosed)
        framer.append(bytes("NEXT\r\n"))
        #expect(framer.next() == nil)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func aBodyWithoutItsLineEndIsFatal() {
        #expect(framesAllWays(bytes("BODY 2\r\nabc\r\nNEXT\r\n")) == [.line("BODY 2"), .unterminatedBody])
        #expect(framesAllWays(bytes("BODY 2\r\nab\rc\r\nNEXT\r\n")) == [.line("BODY 2"), .unterminatedBody])
        #expect(framesAllWays(bytes("SKIP 2\r\nabc\r\nNEXT\r\n")) == [.line("SKIP 2"), .unterminatedBody])
    }

    @Test func closeDropsEverything() {
        var framer = LineFramer(maxLineBytes: 32)
        framer.append(bytes("A\r\nB\r\n"))
        #expect(framer.next() == .line(bytes("A")[...]))
        framer.close()
        #expect(framer.isClosed && framer.bufferedByteCount == 0)
        framer.append(bytes("C\r\n"))
        #expect(framer.next() == nil)
    }

    /// The frame returned is consumed at the next call, so that its slice is still the buffer's.
    @Test func aFrameIsConsumedAtTheNextCall() {
        var framer = LineFramer(maxLineBytes: 32)
        framer.append(bytes("PING\r\nPONG\r\n"))
        #expect(framer.bufferedByteCount == 12)
        #expect(framer.next() == .line(bytes("PING")[...]))
        #expect(framer.bufferedByteCount == 6)
        #expect(framer.next() == .line(bytes("PONG")[...]))
        #expect(framer.next() == nil)
        #expect(framer.bufferedByteCount == 0)
    }
}

@Suite struct LineFieldsTests {
    @Test func fieldsSplitOnRunsOfSpaces() {
        let line = bytes("  ERR  k1 BUSY  slow   down  ")[...]
        let fields = LineFields(line)
        #expect(fields.count == 5)
        #expect(Array(line[fields[0]]) == bytes("ERR"))
        #expect(Array(line[fields[1]]) == bytes("k1"))
        #expect(Array(line[fields[3]]) == bytes("slow"))
        #expect(Array(line[fields.rest(from: 3)]) == bytes("slow   down"))
        #expect(LineFields(bytes("   ")[...]).count == 0)
        #expect(LineFields(bytes("")[...]).count == 0)
        // Fields of a slice that does not start at index 0.
        let tail = bytes("xxSUBMIT echo")[2...]
        #expect(Array(tail[LineFields(tail)[1]]) == bytes("echo"))
    }

    @Test func lengthsAreDecimalDigitsWithinUInt64() throws {
        #expect(try LineFields.length(bytes("0")[...]) == 0)
        #expect(try LineFields.length(bytes("0042")[...]) == 42)
        #expect(try LineFields.length(bytes("18446744073709551615")[...]) == UInt64.max)
        #expect(throws: LineFields.BadLength(message: "length '18446744073709551616' is out of range")) {
            try LineFields.length(bytes("18446744073709551616")[...])
        }
        for bad in ["-3", "+3", "3a", "0x10", "1.5"] {
            #expect(throws: LineFields.BadLength(message: "length '\(bad)' is not a decimal number of bytes")) {
                try LineFields.length(bytes(bad)[...])
            }
        }
    }

    @Test func quotingEscapesAndBounds() {
        #expect(LineFields.quoted(bytes("FOO")[...]) == "'FOO'")
        #expect(LineFields.quoted([0x41, 0x0D, 0x0A, 0x00][...]) == "'A\\r\\n\\0'")
        #expect(LineFields.quoted([0xC3, 0x28][...]) == "'\\u{FFFD}('")
        #expect(LineFields.quoted(bytes(String(repeating: "x", count: 40))[...]) == "'" + String(repeating: "x", count: 32) + "...'")
    }
}
