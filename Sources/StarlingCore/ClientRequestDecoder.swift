/// An incremental, pure decoder of the TCP client protocol (docs/PROTOCOL.md).
///
/// The connection feeds it whatever bytes arrive with `append(_:)` and pulls items with `next()`
/// until it returns nil (more bytes needed). Items come out the same however the bytes are cut
/// into chunks. Input lines end in `\r\n` or `\n`; blank lines are ignored.
///
/// ```
/// PING                                   -> .request(.ping)
/// STATUS                                 -> .request(.status)
/// SUBMIT <service> <key> <length>\r\n<length bytes>\r\n
///                                        -> .request(.submit(service:key:payload:))
/// ```
///
/// Errors come out as `.error(_)` items. A recoverable one (`isFatal == false`) has been skipped
/// over: a bad line, or a `SUBMIT` whose length was readable, whose payload is skipped by its
/// length (for `tooLarge`, counted down as it arrives and never kept). After a fatal one the
/// decoder yields nothing more and drops all input; the connection should answer and close.
///
/// Memory is bounded: once `next()` has returned nil, `bufferedByteCount` is at most
/// `max(maxLineBytes, maxPayloadBytes) + 1`.
public struct ClientRequestDecoder: Sendable {
    public enum Decoded: Hashable, Sendable {
        case request(ClientRequest)
        case error(ClientProtocolError)

        /// Whether this is an error after which the connection must close.
        public var isFatal: Bool {
            if case .error(let error) = self { error.isFatal } else { false }
        }
    }

    public static let defaultMaxLineBytes = 1024
    public static let defaultMaxPayloadBytes = 1 << 20

    /// The longest header line accepted, line end not counted.
    public let maxLineBytes: Int
    /// The largest `SUBMIT` payload accepted; larger ones get `tooLarge` and are skipped.
    public let maxPayloadBytes: Int

    private enum State: Sendable {
        /// Expecting a request line.
        case line
        /// A valid `SUBMIT` header was read; expecting `length` bytes and a line end.
        case payload(service: ServiceName, key: JobKey, length: Int)
        /// Dropping the payload of a rejected `SUBMIT`; the buffer is empty while in this state.
        case skipping(key: JobKey?, remaining: UInt64)
        /// Expecting the line end after a skipped payload.
        case terminator(key: JobKey?)
        /// A fatal error was returned: nothing more.
        case closed
    }

    private var state: State = .line
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var head = 0
    /// How many bytes from `head` are known to hold no `\n` (line state only).
    private var scanned = 0
    /// The last service name accepted: a connection's requests mostly repeat it.
    private var lastService: ServiceName?

    public init(maxLineBytes: Int = defaultMaxLineBytes, maxPayloadBytes: Int = defaultMaxPayloadBytes) {
        precondition(maxLineBytes > 0 && maxPayloadBytes >= 0, "limits must be positive")
        self.maxLineBytes = maxLineBytes
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// Bytes received and not yet decoded or skipped.
    public var bufferedByteCount: Int { buffer.count - head }

    /// Whether a fatal error has been returned: all further input is ignored.
    public var isClosed: Bool {
        if case .closed = state { true } else { false }
    }

    /// Feeds bytes as they arrive. Bytes of a payload being skipped are counted, not kept.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        switch state {
        case .closed:
            return
        case .skipping(let key, let remaining):
            let count = UInt64(bytes.count)
            if count < remaining {
                state = .skipping(key: key, remaining: remaining - count)
            } else {
                state = .terminator(key: key)
                buffer.append(contentsOf: bytes.dropFirst(Int(remaining)))
            }
        case .line, .payload, .terminator:
            buffer.append(contentsOf: bytes)
        }
    }

    /// The next decoded item, or nil when more bytes are needed (or after a fatal error).
    public mutating func next() -> Decoded? {
        while true {
            switch state {
            case .closed, .skipping:
                return nil

            case .line:
                switch scanLine() {
                case .needMore:
                    return nil
                case .tooLong:
                    return fail(.lineTooLong(limit: maxLineBytes))
                case .line(let content, let consumed):
                    let line = buffer[content]
                    let outcome = parse(line: line)
                    consume(consumed)
                    switch outcome {
                    case .blank:
                        continue
                    case .item(let item):
                        return item
                    case .payload(let service, let key, let length):
                        state = .payload(service: service, key: key, length: length)
                        continue
                    case .skip(let item, let key, let length):
                        skip(length, key: key)
                        return item
                    }
                }

            case .payload(let service, let key, let length):
                let available = bufferedByteCount
                guard available > length else { return nil }
                let afterPayload = buffer[head + length]
                var terminatorLength = 1
                if afterPayload == Self.cr {
                    guard available > length + 1 else { return nil }
                    guard buffer[head + length + 1] == Self.lf else { return fail(.unterminatedPayload(key: key)) }
                    terminatorLength = 2
                } else if afterPayload != Self.lf {
                    return fail(.unterminatedPayload(key: key))
                }
                let payload = Array(buffer[head..<(head + length)])
                consume(length + terminatorLength)
                state = .line
                return .request(.submit(service: service, key: key, payload: payload))

            case .terminator(let key):
                let available = bufferedByteCount
                guard available > 0 else { return nil }
                switch buffer[head] {
                case Self.lf:
                    consume(1)
                case Self.cr:
                    guard available > 1 else { return nil }
                    guard buffer[head + 1] == Self.lf else { return fail(.unterminatedPayload(key: key)) }
                    consume(2)
                default:
                    return fail(.unterminatedPayload(key: key))
                }
                state = .line
            }
        }
    }

    // MARK: - Framing

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")
    private static let space = UInt8(ascii: " ")

    private enum Scan {
        case needMore
        case tooLong
        /// The line's content (line end excluded) and how many bytes it takes with its line end.
        case line(content: Range<Int>, consumed: Int)
    }

    /// Finds the next complete line, looking no further than a line of the maximum length could reach.
    private mutating func scanLine() -> Scan {
        let available = bufferedByteCount
        let window = min(available, maxLineBytes + 2)
        let found = buffer[(head + scanned)..<(head + window)].firstIndex(of: Self.lf)
        guard let newline = found else {
            scanned = window
            // A trailing CR may still be the start of the line end.
            let content = available - (available > 0 && buffer[buffer.count - 1] == Self.cr ? 1 : 0)
            return content > maxLineBytes ? .tooLong : .needMore
        }
        let end = newline > head && buffer[newline - 1] == Self.cr ? newline - 1 : newline
        guard end - head <= maxLineBytes else { return .tooLong }
        return .line(content: head..<end, consumed: newline + 1 - head)
    }

    private mutating func consume(_ count: Int) {
        head += count
        scanned = 0
        if head == buffer.count {
            if buffer.capacity > 64 * 1024 {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            head = 0
        } else if head >= 16 * 1024 && head >= buffer.count / 2 {
            buffer.removeSubrange(0..<head)
            head = 0
        }
    }

    /// Starts skipping `count` payload bytes and their line end, dropping what is already buffered.
    private mutating func skip(_ count: UInt64, key: JobKey?) {
        let dropped = min(UInt64(bufferedByteCount), count)
        consume(Int(dropped))
        state = dropped == count ? .terminator(key: key) : .skipping(key: key, remaining: count - dropped)
    }

    private mutating func fail(_ error: ClientProtocolError) -> Decoded {
        state = .closed
        buffer = []
        head = 0
        scanned = 0
        return .error(error)
    }

    // MARK: - Parsing

    private enum LineOutcome {
        case blank
        case item(Decoded)
        /// A valid `SUBMIT` header: read the payload next.
        case payload(service: ServiceName, key: JobKey, length: Int)
        /// A rejected `SUBMIT` with a readable length: report, then skip the payload.
        case skip(Decoded, key: JobKey?, length: UInt64)
    }

    /// The space-separated fields of a line, as `split(separator: space)` gives them (runs of
    /// spaces separate, leading and trailing spaces are ignored), without allocating: how many
    /// there are, and where the first four are.
    private struct Fields {
        private(set) var count = 0
        private var ranges: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)

        init(_ line: ArraySlice<UInt8>) {
            var index = line.startIndex
            while index < line.endIndex {
                guard line[index] != ClientRequestDecoder.space else {
                    index += 1
                    continue
                }
                let start = index
                while index < line.endIndex, line[index] != ClientRequestDecoder.space { index += 1 }
                switch count {
                case 0: ranges.0 = start..<index
                case 1: ranges.1 = start..<index
                case 2: ranges.2 = start..<index
                case 3: ranges.3 = start..<index
                default: break
                }
                count += 1
            }
        }

        /// The range of field `number` (0–3), which must exist.
        subscript(number: Int) -> Range<Int> {
            precondition(number < min(count, 4), "field \(number) of \(count)")
            switch number {
            case 0: return ranges.0
            case 1: return ranges.1
            case 2: return ranges.2
            default: return ranges.3
            }
        }
    }

    private static let submitWord = Array("SUBMIT".utf8)

    private mutating func parse(line: ArraySlice<UInt8>) -> LineOutcome {
        let fields = Fields(line)
        guard fields.count > 0 else { return .blank }
        let command = line[fields[0]]
        if command.elementsEqual(Self.submitWord) { return parseSubmit(line, fields) }
        guard let text = String(validating: line, as: UTF8.self) else {
            return .item(.error(.badRequest(key: nil, message: "request line is not valid UTF-8")))
        }
        if command.elementsEqual("PING".utf8) || command.elementsEqual("STATUS".utf8) {
            guard fields.count == 1 else {
                return .item(.error(.badRequest(key: nil, message: "\(text.split(separator: " ")[0]) takes no arguments")))
            }
            return .item(.request(command.count == 4 ? .ping : .status))
        }
        return .item(.error(.badRequest(key: nil, message: "unknown command \(Self.quoted(command))")))
    }

    private mutating func parseSubmit(_ line: ArraySlice<UInt8>, _ fields: Fields) -> LineOutcome {
        func bad(_ key: JobKey?, _ message: String) -> Decoded { .error(.badRequest(key: key, message: message)) }
        guard fields.count == 4 else {
            return .item(bad(nil, "usage: SUBMIT <service> <key> <length>"))
        }
        let serviceField = line[fields[1]]
        let keyResult = Result { () throws(JobKey.Invalid) in try JobKey(bytes: line[fields[2]]) }
        let key = try? keyResult.get()

        let lengthField = line[fields[3]]
        var length: UInt64 = 0
        guard lengthField.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return .item(bad(key, "length \(Self.quoted(lengthField)) is not a decimal number of bytes"))
        }
        for digit in lengthField {
            let (times10, o1) = length.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !o1, !o2 else { return .item(bad(key, "length \(Self.quoted(lengthField)) is out of range")) }
            length = sum
        }

        // The length is readable, so whatever else is wrong, the payload can be skipped and the
        // connection stays in step.
        let service: ServiceName
        if let cached = lastService, Self.equal(cached.value, serviceField) {
            service = cached
        } else {
            do throws(ServiceName.Invalid) {
                guard let text = String(validating: serviceField, as: UTF8.self) else { throw .badCharacter("\u{FFFD}") }
                service = try ServiceName(text)
            } catch {
                return .skip(bad(key, error.description), key: key, length: length)
            }
            lastService = service
        }
        switch keyResult {
        case .failure(let error):
            return .skip(bad(nil, error.description), key: nil, length: length)
        case .success(let key):
            guard length <= UInt64(maxPayloadBytes) else {
                return .skip(.error(.tooLarge(key: key, length: length, limit: maxPayloadBytes)), key: key, length: length)
            }
            return .payload(service: service, key: key, length: Int(length))
        }
    }

    /// Whether `text` is exactly `bytes` in UTF-8.
    private static func equal(_ text: String, _ bytes: ArraySlice<UInt8>) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { utf8 in
            bytes.withUnsafeBufferPointer { utf8.elementsEqual($0) }
        } ?? text.utf8.elementsEqual(bytes)
    }

    /// `'text'` for a message: at most 32 characters, control and non-ASCII characters escaped.
    private static func quoted(_ bytes: ArraySlice<UInt8>) -> String {
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
