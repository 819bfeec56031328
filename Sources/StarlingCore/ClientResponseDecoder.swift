/// An incremental, pure decoder of the answers of the TCP client protocol (docs/PROTOCOL.md), for
/// clients: the counterpart of `ClientRequestDecoder`.
///
/// The client feeds it whatever bytes arrive with `append(_:)` and pulls items with `next()` until
/// it returns nil (more bytes needed). Items come out the same however the bytes are cut into
/// chunks. Lines may end in `\r\n` or `\n`; blank lines are ignored.
///
/// ```
/// PONG                                   -> .response(.pong)
/// WELCOME                                -> .response(.welcome)
/// STATUS <n>\r\n<n bytes>\r\n            -> .response(.status(json:))
/// SHARDS <service> <16 hex digits>       -> .response(.shards(service:shards:))
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
///
/// The framing is `LineDecoder`'s; the answer side's own part is its grammar, below. Its bodies
/// are `OK` results, `FAIL` texts and `STATUS` JSON.
public typealias ClientResponseDecoder = LineDecoder<ClientResponseGrammar>

extension LineDecoder where Grammar == ClientResponseGrammar {
    /// Why some input was not an answer.
    public typealias Failure = ClientResponseGrammar.Failure
}

/// What answer lines mean: the grammar of `ClientResponseDecoder`.
public struct ClientResponseGrammar: LineGrammar {
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

    public enum Decoded: Hashable, Sendable {
        case response(ClientResponse)
        case error(Failure)

        /// Whether this is an error after which the connection must close.
        public var isFatal: Bool {
            if case .error(let failure) = self { failure.isFatal } else { false }
        }
    }

    private enum Framed: Sendable {
        case status
        case ok(JobKey)
        case fail(JobKey)

        var key: JobKey? {
            switch self {
            case .status: nil
            case .ok(let key), .fail(let key): key
            }
        }
    }

    public static var defaultMaxBodyBytes: Int { 16 << 20 }

    public let maxBodyBytes: Int
    /// The answer whose body the framer reads; what the body is delivered as.
    private var pendingBody: Framed?
    /// The key of the answer whose body the framer skips, for a missing line end.
    private var skippedKey: JobKey?

    public init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    /// The decoding loop, compiled here specialised for this grammar (see `LineGrammar.next(in:)`).
    public static func next(in decoder: inout LineDecoder<Self>) -> Decoded? { decoder.decodeNext() }

    public mutating func read(line: ArraySlice<UInt8>) -> LineReading<Decoded> {
        switch parse(line: line) {
        case .blank:
            return .blank
        case .item(let item):
            return item.isFatal ? .fatal(item) : .item(item)
        case .body(let framed, let length):
            pendingBody = framed
            return .body(length: length)
        case .skip(let failure, let length):
            pendingBody = nil
            skippedKey = failure.key
            return .skip(.error(failure), length: length)
        }
    }

    public mutating func item(body bytes: ArraySlice<UInt8>) -> Decoded {
        guard let framed = pendingBody else { preconditionFailure("a body without its header") }
        pendingBody = nil
        let body = Array(bytes)
        switch framed {
        case .status: return .response(.status(json: body))
        case .ok(let key): return .response(.ok(key: key, result: body))
        case .fail(let key): return .response(.fail(key: key, text: body))
        }
    }

    public func lineTooLong(limit: Int) -> Decoded { .error(.lineTooLong(limit: limit)) }

    public func unterminatedBody() -> Decoded {
        let key = if let pendingBody { pendingBody.key } else { skippedKey }
        return .error(.unterminatedBody(key: key))
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
        let fields = LineFields(line)
        guard fields.count > 0 else { return .blank }
        let word = line[fields[0]]
        if word.elementsEqual("OK".utf8) { return parseFramed(line, fields, ok: true) }
        if word.elementsEqual("FAIL".utf8) { return parseFramed(line, fields, ok: false) }
        if word.elementsEqual("ERR".utf8) { return parseError(line, fields) }
        if word.elementsEqual("STATUS".utf8) {
            guard fields.count == 2 else {
                return .item(.error(.unframed(key: nil, message: "usage: STATUS <length>")))
            }
            return framedBody(.success(.status), key: nil, length: line[fields[1]])
        }
        if word.elementsEqual("SHARDS".utf8) { return .item(parseShards(line, fields)) }
        if word.elementsEqual("PONG".utf8) {
            guard fields.count == 1 else { return .item(.error(.malformed(key: nil, message: "PONG takes no arguments"))) }
            return .item(.response(.pong))
        }
        if word.elementsEqual("WELCOME".utf8) {
            guard fields.count == 1 else { return .item(.error(.malformed(key: nil, message: "WELCOME takes no arguments"))) }
            return .item(.response(.welcome))
        }
        return .item(.error(.malformed(key: nil, message: "unknown answer \(LineFields.quoted(word))")))
    }

    /// `OK <key> <n>` or `FAIL <key> <n>`.
    private func parseFramed(_ line: ArraySlice<UInt8>, _ fields: LineFields, ok: Bool) -> LineOutcome {
        let word = ok ? "OK" : "FAIL"
        let key = fields.count > 1 ? try? JobKey(bytes: line[fields[1]]) : nil
        guard fields.count == 3 else {
            return .item(.error(.unframed(key: key, message: "usage: \(word) <key> <length>")))
        }
        let header: Result<Framed, Failure> = if let key {
            .success(ok ? .ok(key) : .fail(key))
        } else {
            .failure(.malformed(key: nil, message: "\(word) with invalid key \(LineFields.quoted(line[fields[1]]))"))
        }
        return framedBody(header, key: key, length: line[fields[2]])
    }

    /// The body of a framed answer: the answer is unframed when its length cannot be read; else
    /// the body is read, or skipped when the header is bad or the body over the limit.
    private func framedBody(_ header: Result<Framed, Failure>, key: JobKey?, length field: ArraySlice<UInt8>) -> LineOutcome {
        let length: UInt64
        do throws(LineFields.BadLength) {
            length = try LineFields.length(field)
        } catch {
            return .item(.error(.unframed(key: key, message: error.message)))
        }
        // The length is readable, so whatever else is wrong the body can be skipped.
        let framed: Framed
        switch header {
        case .failure(let failure): return .skip(failure, length: length)
        case .success(let value): framed = value
        }
        guard length <= UInt64(maxBodyBytes) else {
            return .skip(.bodyTooLarge(key: key, length: length, limit: maxBodyBytes), length: length)
        }
        return .body(framed, length: Int(length))
    }

    /// `SHARDS <service> <16 hex digits>`: exactly these fields, a valid service name and the set
    /// as `KeyShardSet.hex` writes it, 16 lowercase hexadecimal digits.
    private func parseShards(_ line: ArraySlice<UInt8>, _ fields: LineFields) -> Decoded {
        func malformed(_ message: String) -> Decoded { .error(.malformed(key: nil, message: message)) }
        guard fields.count == 3 else { return malformed("usage: SHARDS <service> <16 hex digits>") }
        let serviceField = line[fields[1]]
        let service: ServiceName
        do throws(ServiceName.Invalid) {
            guard let text = String(validating: serviceField, as: UTF8.self) else { throw .badCharacter("\u{FFFD}") }
            service = try ServiceName(text)
        } catch {
            return malformed("SHARDS with invalid service \(LineFields.quoted(serviceField)): \(error)")
        }
        let setField = line[fields[2]]
        guard let shards = Self.shardSet(hex: setField) else {
            return malformed("SHARDS set \(LineFields.quoted(setField)) is not 16 lowercase hexadecimal digits")
        }
        return .response(.shards(service: service, shards: shards))
    }

    /// Exactly 16 digits of `0-9 a-f`, shard 63 first; nil for anything else.
    private static func shardSet(hex field: ArraySlice<UInt8>) -> KeyShardSet? {
        guard field.count == 16 else { return nil }
        var bits: UInt64 = 0
        for byte in field {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            bits = bits << 4 | UInt64(digit)
        }
        return KeyShardSet(bits: bits)
    }

    /// `ERR <key|-> <CODE> <message>`; the message is the rest of the line, inner spaces kept.
    private func parseError(_ line: ArraySlice<UInt8>, _ fields: LineFields) -> LineOutcome {
        guard fields.count > 1 else {
            return .item(.error(.malformed(key: nil, message: "usage: ERR <key> <CODE> <message>")))
        }
        let keyField = line[fields[1]]
        var key: JobKey?
        if !keyField.elementsEqual("-".utf8) {
            guard let valid = try? JobKey(bytes: keyField) else {
                return .item(.error(.malformed(key: nil, message: "ERR with invalid key \(LineFields.quoted(keyField))")))
            }
            key = valid
        }
        guard fields.count > 2 else {
            return .item(.error(.malformed(key: key, message: "ERR without an error code")))
        }
        let codeField = line[fields[2]]
        guard let text = String(validating: codeField, as: UTF8.self), let code = ClientErrorCode(rawValue: text) else {
            return .item(.error(.malformed(key: key, message: "unknown error code \(LineFields.quoted(codeField))")))
        }
        let message = fields.count > 3 ? String(decoding: line[fields.rest(from: 3)], as: UTF8.self) : ""
        return .item(.response(.error(key: key, code: code, message: message.isEmpty ? code.defaultMessage : message)))
    }
}
