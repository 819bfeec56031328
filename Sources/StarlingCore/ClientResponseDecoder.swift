/// An incremental, pure decoder of the answers of the TCP client protocol (docs/PROTOCOL.md), for
/// clients: the counterpart of `ClientRequestDecoder`.
///
/// The client feeds it whatever bytes arrive with `append(_:)` and pulls items with `next()` until
/// it returns nil (more bytes needed). Items come out the same however the bytes are cut into
/// chunks. Lines may end in `\r\n` or `\n`; blank lines are ignored.
///
/// ```
/// PONG                                   -> .response(.pong)
/// STATUS <n>\r\n<n bytes>\r\n            -> .response(.status(json:))
/// OK <key> <n>\r\n<n bytes>\r\n          -> .response(.ok(key:result:))
/// FAIL <key> <n>\r\n<n bytes>\r\n        -> .response(.fail(key:text:))
/// ERR <key|-> <CODE> <message>           -> .response(.error(key:code:message:))
/// ```
///
/// Any input gives responses or typed errors, never a trap. A recoverable error
/// (`isFatal == false`) has been skipped over: a complete line that is not an answer, or a framed
/// answer whose length was readable, whose body is skipped by its length (for `bodyTooLarge`,
/// counted down as it arrives and never kept). After a fatal error the decoder yields nothing more
/// and drops all input; the client should close the connection.
///
/// Memory is bounded: once `next()` has returned nil, `bufferedByteCount` is at most
/// `max(maxLineBytes, maxBodyBytes) + 1`.
public struct ClientResponseDecoder: Sendable {
    public enum Decoded: Hashable, Sendable {
        case response(ClientResponse)
        case error(Failure)

        /// Whether this is an error after which the connection must close.
        public var isFatal: Bool {
            if case .error(let failure) = self { failure.isFatal } else { false }
        }
    }

    /// Why some input was not an answer.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// A complete line that is not an answer (unknown word, bad key, unknown error code), or a
        /// framed answer whose length was readable but whose key was not; its body has been
        /// skipped. Recoverable. `key` is set when the line named a valid key.
        case malformed(key: JobKey?, message: String)
        /// A framed answer announcing more than `maxBodyBytes`; its body is skipped without being
        /// kept. Recoverable.
        case bodyTooLarge(key: JobKey?, length: UInt64, limit: Int)
        /// A line longer than the limit with no line end. Fatal.
        case lineTooLong(limit: Int)
        /// An `OK`, `FAIL` or `STATUS` header whose length cannot be read, so where the next
        /// answer starts is unknown. Fatal.
        case unframed(key: JobKey?, message: String)
        /// A body not followed by `\r\n` or `\n`: the length was wrong. Fatal.
        case unterminatedBody(key: JobKey?)

        /// Whether the decoder has stopped and the connection must be closed.
        public var isFatal: Bool {
            switch self {
            case .malformed, .bodyTooLarge: false
            case .lineTooLong, .unframed, .unterminatedBody: true
            }
        }

        /// The job the error is about, if the line got that far.
        public var key: JobKey? {
            switch self {
            case .malformed(let key, _), .bodyTooLarge(let key, _, _), .unframed(let key, _),
                 .unterminatedBody(let key):
                key
            case .lineTooLong:
                nil
            }
        }

        public var description: String {
            let about = key.map { " (key \($0))" } ?? ""
            switch self {
            case .malformed(_, let message): return "malformed answer\(about): \(message)"
            case .bodyTooLarge(_, let length, let limit):
                return "answer body of \(length) bytes\(about) is over the limit of \(limit) bytes"
            case .lineTooLong(let limit): return "answer line longer than \(limit) bytes"
            case .unframed(_, let message): return "unframed answer\(about): \(message)"
            case .unterminatedBody: return "answer body\(about) not followed by a line end: length does not match"
            }
        }
    }

    public static let defaultMaxLineBytes = 1024
    public static let defaultMaxBodyBytes = 16 << 20

    /// The longest answer line accepted, line end not counted.
    public let maxLineBytes: Int
    /// The largest body (`OK` result, `FAIL` text, `STATUS` JSON) accepted; larger ones are skipped.
    public let maxBodyBytes: Int

    private enum Framed: Sendable {
        case status
        case ok(JobKey)
        case fail(JobKey)
    }

    private enum State: Sendable {
        /// Expecting an answer line.
        case line
        /// A valid framed header was read; expecting `length` bytes and a line end.
        case body(Framed, length: Int)
        /// Dropping a rejected body; the buffer is empty while in this state.
        case skipping(key: JobKey?, remaining: UInt64)
        /// Expecting the line end after a skipped body.
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

    public init(maxLineBytes: Int = defaultMaxLineBytes, maxBodyBytes: Int = defaultMaxBodyBytes) {
        precondition(maxLineBytes > 0 && maxBodyBytes >= 0, "limits must be positive")
        self.maxLineBytes = maxLineBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Bytes received and not yet decoded or skipped.
    public var bufferedByteCount: Int { buffer.count - head }

    /// Whether a fatal error has been returned: all further input is ignored.
    public var isClosed: Bool {
        if case .closed = state { true } else { false }
    }

    /// Feeds bytes as they arrive. Bytes of a body being skipped are counted, not kept.
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
        case .line, .body, .terminator:
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
                    let outcome = parse(line: buffer[content])
                    consume(consumed)
                    switch outcome {
                    case .blank:
                        continue
                    case .item(let item):
                        if item.isFatal, case .error(let failure) = item { return fail(failure) }
                        return item
                    case .body(let framed, let length):
                        state = .body(framed, length: length)
                        continue
                    case .skip(let failure, let length):
                        skip(length, key: failure.key)
                        return .error(failure)
                    }
                }

            case .body(let framed, let length):
                let available = bufferedByteCount
                guard available > length else { return nil }
                let key = Self.key(of: framed)
                var terminatorLength = 1
                switch buffer[head + length] {
                case Self.lf:
                    break
                case Self.cr:
                    guard available > length + 1 else { return nil }
                    guard buffer[head + length + 1] == Self.lf else { return fail(.unterminatedBody(key: key)) }
                    terminatorLength = 2
                default:
                    return fail(.unterminatedBody(key: key))
                }
                let body = Array(buffer[head..<(head + length)])
                consume(length + terminatorLength)
                state = .line
                switch framed {
                case .status: return .response(.status(json: body))
                case .ok(let key): return .response(.ok(key: key, result: body))
                case .fail(let key): return .response(.fail(key: key, text: body))
                }

            case .terminator(let key):
                let available = bufferedByteCount
                guard available > 0 else { return nil }
                switch buffer[head] {
                case Self.lf:
                    consume(1)
                case Self.cr:
                    guard available > 1 else { return nil }
                    guard buffer[head + 1] == Self.lf else { return fail(.unterminatedBody(key: key)) }
                    consume(2)
                default:
                    return fail(.unterminatedBody(key: key))
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

    /// Starts skipping `count` body bytes and their line end, dropping what is already buffered.
    private mutating func skip(_ count: UInt64, key: JobKey?) {
        let dropped = min(UInt64(bufferedByteCount), count)
        consume(Int(dropped))
        state = dropped == count ? .terminator(key: key) : .skipping(key: key, remaining: count - dropped)
    }

    private mutating func fail(_ failure: Failure) -> Decoded {
        state = .closed
        buffer = []
        head = 0
        scanned = 0
        return .error(failure)
    }

    private static func key(of framed: Framed) -> JobKey? {
        switch framed {
        case .status: nil
        case .ok(let key), .fail(let key): key
        }
    }

    // MARK: - Parsing

    private enum LineOutcome {
        case blank
        /// A complete answer or an error; a fatal error closes the decoder.
        case item(Decoded)
        /// A valid framed header: read the body next.
        case body(Framed, length: Int)
        /// A rejected framed header with a readable length: report, then skip the body.
        case skip(Failure, length: UInt64)
    }

    private func parse(line: ArraySlice<UInt8>) -> LineOutcome {
        let fields = line.split(separator: Self.space)
        guard let word = fields.first else { return .blank }
        if word.elementsEqual("OK".utf8) { return parseFramed(fields, ok: true) }
        if word.elementsEqual("FAIL".utf8) { return parseFramed(fields, ok: false) }
        if word.elementsEqual("ERR".utf8) { return parseError(line) }
        if word.elementsEqual("STATUS".utf8) {
            guard fields.count == 2 else {
                return .item(.error(.unframed(key: nil, message: "usage: STATUS <length>")))
            }
            switch Self.length(fields[1]) {
            case .failure(let failure):
                return .item(.error(.unframed(key: nil, message: failure.message)))
            case .success(let length):
                guard length <= UInt64(maxBodyBytes) else {
                    return .skip(.bodyTooLarge(key: nil, length: length, limit: maxBodyBytes), length: length)
                }
                return .body(.status, length: Int(length))
            }
        }
        if word.elementsEqual("PONG".utf8) {
            guard fields.count == 1 else { return .item(.error(.malformed(key: nil, message: "PONG takes no arguments"))) }
            return .item(.response(.pong))
        }
        return .item(.error(.malformed(key: nil, message: "unknown answer \(Self.quoted(word))")))
    }

    /// `OK <key> <n>` or `FAIL <key> <n>`.
    private func parseFramed(_ fields: [ArraySlice<UInt8>], ok: Bool) -> LineOutcome {
        let word = ok ? "OK" : "FAIL"
        let key = fields.count > 1 ? Self.jobKey(fields[1]) : nil
        guard fields.count == 3 else {
            return .item(.error(.unframed(key: key, message: "usage: \(word) <key> <length>")))
        }
        let length: UInt64
        switch Self.length(fields[2]) {
        case .failure(let failure): return .item(.error(.unframed(key: key, message: failure.message)))
        case .success(let value): length = value
        }
        // The length is readable, so whatever else is wrong the body can be skipped.
        guard let key else {
            return .skip(.malformed(key: nil, message: "\(word) with invalid key \(Self.quoted(fields[1]))"), length: length)
        }
        guard length <= UInt64(maxBodyBytes) else {
            return .skip(.bodyTooLarge(key: key, length: length, limit: maxBodyBytes), length: length)
        }
        return .body(ok ? .ok(key) : .fail(key), length: Int(length))
    }

    /// `ERR <key|-> <CODE> <message>`; the message is the rest of the line.
    private func parseError(_ line: ArraySlice<UInt8>) -> LineOutcome {
        // Tokens are separated by runs of spaces; the message keeps its inner spaces.
        var rest = line.dropFirst(3)
        func token() -> ArraySlice<UInt8>? {
            rest = rest.drop { $0 == Self.space }
            guard !rest.isEmpty else { return nil }
            let end = rest.firstIndex(of: Self.space) ?? rest.endIndex
            defer { rest = rest[end...] }
            return rest[rest.startIndex..<end]
        }
        guard let keyField = token() else {
            return .item(.error(.malformed(key: nil, message: "usage: ERR <key> <CODE> <message>")))
        }
        var key: JobKey?
        if !keyField.elementsEqual("-".utf8) {
            guard let valid = Self.jobKey(keyField) else {
                return .item(.error(.malformed(key: nil, message: "ERR with invalid key \(Self.quoted(keyField))")))
            }
            key = valid
        }
        guard let codeField = token() else {
            return .item(.error(.malformed(key: key, message: "ERR without an error code")))
        }
        guard let text = String(validating: codeField, as: UTF8.self), let code = ClientErrorCode(rawValue: text) else {
            return .item(.error(.malformed(key: key, message: "unknown error code \(Self.quoted(codeField))")))
        }
        var message = String(decoding: rest.drop { $0 == Self.space }, as: UTF8.self)
        while message.last == " " { message.removeLast() }
        if message.isEmpty { message = code.defaultMessage }
        return .item(.response(.error(key: key, code: code, message: message)))
    }

    private struct BadLength: Error {
        let message: String
    }

    /// A decimal length: digits only, no sign, no overflow.
    private static func length(_ field: ArraySlice<UInt8>) -> Result<UInt64, BadLength> {
        guard field.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return .failure(BadLength(message: "length \(quoted(field)) is not a decimal number of bytes"))
        }
        var length: UInt64 = 0
        for digit in field {
            let (times10, o1) = length.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !o1, !o2 else { return .failure(BadLength(message: "length \(quoted(field)) is out of range")) }
            length = sum
        }
        return .success(length)
    }

    private static func jobKey(_ field: ArraySlice<UInt8>) -> JobKey? {
        try? JobKey(bytes: field)
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
