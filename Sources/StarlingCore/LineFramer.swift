/// The framing of the client protocol (docs/PROTOCOL.md, "Framing"), for both of its sides: header
/// lines that end in `\r\n` or `\n`, each at most `maxLineBytes` long, line end not counted, and
/// bodies whose length a header announced, each followed by a line end. A `LineDecoder` is this
/// framer plus a `LineGrammar`, the parsing of one side's header lines: `ClientRequestDecoder` and
/// `ClientResponseDecoder` are two of them.
///
/// Feed bytes as they arrive with `append(_:)` and take frames with `next()` until it returns nil
/// (more bytes needed). After reading a header that announces a body, call `expectBody(length:)`
/// to have the next frame be that body, or `skipBody(length:)` to drop it: a skipped body is
/// counted down as it arrives and never kept. Frames come out the same however the bytes are cut.
///
/// A line or body is a slice of the framer's buffer, valid until the next call on the framer; it
/// is consumed then, so reading a line copies nothing and allocates nothing.
///
/// Two faults lose the framing and close the framer: a line with no line end within
/// `maxLineBytes`, and a body not followed by a line end. It then yields nothing more and drops all
/// input; so does `close()`. Memory is bounded: once `next()` has returned nil, `bufferedByteCount`
/// is at most `max(maxLineBytes, largest expected body) + 1`.
public struct LineFramer: Sendable {
    public enum Frame: Equatable {
        /// A header line, line end excluded; it may be empty or all spaces.
        case line(ArraySlice<UInt8>)
        /// The body announced by `expectBody(length:)`, line end excluded.
        case body(ArraySlice<UInt8>)
        /// No line end within `maxLineBytes`: where the next line starts is unknown. Closes the framer.
        case lineTooLong
        /// A body, expected or skipped, not followed by a line end: its length was wrong. Closes the framer.
        case unterminatedBody
    }

    /// The longest header line accepted, line end not counted.
    public let maxLineBytes: Int

    private enum Mode: Sendable {
        case line
        /// The next `length` bytes and a line end are a body.
        case body(length: Int)
        /// Dropping a body as it arrives; the buffer is empty in this mode.
        case skipping(remaining: UInt64)
        /// Expecting the line end of a skipped body.
        case skippedLineEnd
        case closed
    }

    private var mode: Mode = .line
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var head = 0
    /// Bytes of the last frame returned, consumed at the next call (so its slice stays valid).
    private var returned = 0
    /// How many bytes from `head` are known to hold no `\n` (line mode only).
    private var scanned = 0

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")
    /// Consumed bytes kept at the front of the buffer before it is compacted.
    private static let compactAfter = 16 * 1024
    /// Buffer capacity kept once empty; a larger buffer (after a large body) is freed.
    private static let retainedCapacity = 64 * 1024

    public init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0, "the line limit must be positive")
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes received and not yet returned in a frame or skipped.
    public var bufferedByteCount: Int { buffer.count - head - returned }

    /// Whether the framing was lost (or `close()` called): all further input is ignored.
    public var isClosed: Bool {
        if case .closed = mode { true } else { false }
    }

    /// Feeds bytes as they arrive. Bytes of a body being skipped are counted, not kept.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        settle()
        switch mode {
        case .closed:
            return
        case .skipping(let remaining):
            let count = UInt64(bytes.count)
            if count < remaining {
                mode = .skipping(remaining: remaining - count)
            } else {
                mode = .skippedLineEnd
                buffer.append(contentsOf: bytes.dropFirst(Int(remaining)))
            }
        case .line, .body, .skippedLineEnd:
            buffer.append(contentsOf: bytes)
        }
    }

    /// The next line or body, or nil when more bytes are needed (or once closed).
    public mutating func next() -> Frame? {
        switch nextPlace() {
        case nil: nil
        case .line(let range): .line(buffer[range])
        case .body(let range): .body(buffer[range])
        case .lineTooLong: .lineTooLong
        case .unterminatedBody: .unterminatedBody
        }
    }

    /// A frame by where it is in the buffer: no reference to the buffer to count.
    private enum Place {
        case line(Range<Int>)
        case body(Range<Int>)
        case lineTooLong
        case unterminatedBody
    }

    private mutating func nextPlace() -> Place? {
        settle()
        while true {
            switch mode {
            case .closed, .skipping:
                return nil
            case .line:
                return nextLine()
            case .body(let length):
                switch lineEnd(at: head + length) {
                case .needMore:
                    return nil
                case .missing:
                    return fail(.unterminatedBody)
                case .found(let lineEndBytes):
                    mode = .line
                    returned = length + lineEndBytes
                    return .body(head..<(head + length))
                }
            case .skippedLineEnd:
                switch lineEnd(at: head) {
                case .needMore:
                    return nil
                case .missing:
                    return fail(.unterminatedBody)
                case .found(let lineEndBytes):
                    consume(lineEndBytes)
                    mode = .line
                }
            }
        }
    }

    /// After a header that announces `length` body bytes: the next frame is that body.
    public mutating func expectBody(length: Int) {
        settle()
        guard case .line = mode else { return }
        precondition(length >= 0, "a body length is never negative")
        mode = .body(length: length)
    }

    /// After a header that announces `length` body bytes the reader rejects: drops them and their
    /// line end, counting down what has not arrived yet.
    public mutating func skipBody(length: UInt64) {
        settle()
        guard case .line = mode else { return }
        let dropped = min(UInt64(buffer.count - head), length)
        consume(Int(dropped))
        mode = dropped == length ? .skippedLineEnd : .skipping(remaining: length - dropped)
    }

    /// Stops framing (the reader found the input unreadable): drops the buffer and all further input.
    public mutating func close() {
        mode = .closed
        buffer = []
        head = 0
        returned = 0
        scanned = 0
    }

    // MARK: - Scanning

    /// Finds the next complete line, looking no further than a line of the maximum length could reach.
    private mutating func nextLine() -> Place? {
        let available = buffer.count - head
        let window = min(available, maxLineBytes + 2)
        guard let newline = buffer[(head + scanned)..<(head + window)].firstIndex(of: Self.lf) else {
            scanned = window
            // A trailing CR may still be the start of the line end.
            let content = available - (available > 0 && buffer[buffer.count - 1] == Self.cr ? 1 : 0)
            return content > maxLineBytes ? fail(.lineTooLong) : nil
        }
        let end = newline > head && buffer[newline - 1] == Self.cr ? newline - 1 : newline
        guard end - head <= maxLineBytes else { return fail(.lineTooLong) }
        returned = newline + 1 - head
        return .line(head..<end)
    }

    private enum LineEnd {
        case needMore
        case missing
        /// A line end of this many bytes (1 or 2).
        case found(Int)
    }

    /// Whether a line end starts at `index`.
    private func lineEnd(at index: Int) -> LineEnd {
        guard index < buffer.count else { return .needMore }
        switch buffer[index] {
        case Self.lf:
            return .found(1)
        case Self.cr:
            guard index + 1 < buffer.count else { return .needMore }
            return buffer[index + 1] == Self.lf ? .found(2) : .missing
        default:
            return .missing
        }
    }

    /// Consumes the frame returned last: its slice is no longer used.
    private mutating func settle() {
        guard returned > 0 else { return }
        let count = returned
        returned = 0
        consume(count)
    }

    private mutating func consume(_ count: Int) {
        head += count
        scanned = 0
        if head == buffer.count {
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            head = 0
        } else if head >= Self.compactAfter && head >= buffer.count / 2 {
            buffer.removeSubrange(0..<head)
            head = 0
        }
    }

    private mutating func fail(_ place: Place) -> Place {
        close()
        return place
    }
}

/// What one side of a line protocol makes of its header lines: the only part in which
/// `ClientRequestDecoder` and `ClientResponseDecoder` differ. `LineFramer.next(using:)` asks it
/// about each line and turns the framer's faults into its items.
public protocol LineGrammar: Sendable {
    /// What the decoder yields: a request or an answer, or an error.
    associatedtype Decoded
    /// The largest body accepted when the decoder is not told otherwise.
    static var defaultMaxBodyBytes: Int { get }
    /// A grammar that rejects (and has the framer skip) bodies over `maxBodyBytes`.
    init(maxBodyBytes: Int)
    /// The largest body accepted.
    var maxBodyBytes: Int { get }
    /// What a header line (line end excluded; it may be blank) is.
    mutating func read(line: ArraySlice<UInt8>) -> LineReading<Decoded>
    /// The item made of the body that the last `.body` reading announced.
    mutating func item(body: ArraySlice<UInt8>) -> Decoded
    /// The fatal error for a header line longer than `limit` bytes.
    func lineTooLong(limit: Int) -> Decoded
    /// The fatal error for a body, read or skipped, not followed by a line end.
    func unterminatedBody() -> Decoded
    /// `decoder.decodeNext()`, written out by each grammar so that the decoding loop is compiled
    /// specialised for it where the grammar is declared. `LineDecoder.next()` calls this: a caller
    /// in another module then runs that specialised loop, not a generic one (a generic is not
    /// specialised across modules unless inlinable, and the loop is not).
    static func next(in decoder: inout LineDecoder<Self>) -> Decoded?
}

/// What a `LineGrammar` made of a header line.
public enum LineReading<Item> {
    case blank
    case item(Item)
    /// An error after which nothing can be read: the framer closes.
    case fatal(Item)
    /// A header announcing a body of `length` bytes to read next.
    case body(length: Int)
    /// A rejected header whose body is skipped by its length; `item` reports it.
    case skip(Item, length: UInt64)
}

extension LineFramer {
    /// The next item of a line protocol, or nil when more bytes are needed (or once closed).
    mutating func next<Grammar: LineGrammar>(using grammar: inout Grammar) -> Grammar.Decoded? {
        while let place = nextPlace() {
            switch place {
            case .line(let range):
                switch grammar.read(line: buffer[range]) {
                case .blank:
                    continue
                case .item(let item):
                    return item
                case .fatal(let item):
                    close()
                    return item
                case .body(let length):
                    expectBody(length: length)
                case .skip(let item, let length):
                    skipBody(length: length)
                    return item
                }
            case .body(let range):
                return grammar.item(body: buffer[range])
            case .lineTooLong:
                return grammar.lineTooLong(limit: maxLineBytes)
            case .unterminatedBody:
                return grammar.unterminatedBody()
            }
        }
        return nil
    }
}
