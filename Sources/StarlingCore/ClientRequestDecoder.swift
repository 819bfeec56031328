/// An incremental, pure decoder of the TCP client protocol (docs/PROTOCOL.md).
///
/// The connection feeds it whatever bytes arrive with `append(_:)` and pulls items with `next()`
/// until it returns nil (more bytes needed). Items come out the same however the bytes are cut
/// into chunks. Input lines end in `\r\n` or `\n`; blank lines are ignored.
///
/// ```
/// AUTH <token>                           -> .request(.auth(token:))
/// PING                                   -> .request(.ping)
/// STATUS                                 -> .request(.status)
/// SHARDS                                 -> .request(.shards)
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
///
/// The framing is `LineDecoder`'s; the request side's own part is its grammar, below. Its bodies
/// are `SUBMIT` payloads: `maxPayloadBytes` is its `maxBodyBytes`.
public typealias ClientRequestDecoder = LineDecoder<ClientRequestGrammar>

extension LineDecoder where Grammar == ClientRequestGrammar {
    public static var defaultMaxPayloadBytes: Int { defaultMaxBodyBytes }

    /// The largest `SUBMIT` payload accepted; larger ones get `tooLarge` and are skipped.
    public var maxPayloadBytes: Int { maxBodyBytes }

    public init(maxLineBytes: Int = defaultMaxLineBytes, maxPayloadBytes: Int = defaultMaxPayloadBytes) {
        self.init(maxLineBytes: maxLineBytes, maxBodyBytes: maxPayloadBytes)
    }
}

/// What request lines mean: the grammar of `ClientRequestDecoder`.
public struct ClientRequestGrammar: LineGrammar {
    public enum Decoded: Hashable, Sendable {
        case request(ClientRequest)
        case error(ClientProtocolError)

        /// Whether this is an error after which the connection must close.
        public var isFatal: Bool {
            if case .error(let error) = self { error.isFatal } else { false }
        }
    }

    /// The hard bound of `max_payload_bytes`: a worker reads a payload for any service, whose
    /// primary then applies the service's own limit (an entry node of another service does not
    /// know it).
    public static var defaultMaxBodyBytes: Int { ServiceDefinition.maxPayloadBytesRange.upperBound }

    public let maxBodyBytes: Int
    /// The `SUBMIT` whose payload the framer reads: what the payload, or its missing line
    /// end, is reported with.
    private var pendingSubmit: (service: ServiceName, key: JobKey)?
    /// The key of the `SUBMIT` whose payload the framer skips, for a missing line end.
    private var skippedKey: JobKey?
    /// The last service name accepted: a connection's requests mostly repeat it.
    private var lastService: ServiceName?

    public init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    /// The decoding loop, compiled here specialised for this grammar (see `LineGrammar.next(in:)`).
    public static func next(in decoder: inout LineDecoder<Self>) -> Decoded? { decoder.decodeNext() }

    public mutating func item(body: ArraySlice<UInt8>) -> Decoded {
        guard let submit = pendingSubmit else { preconditionFailure("a payload without its SUBMIT") }
        pendingSubmit = nil
        return .request(.submit(service: submit.service, key: submit.key, payload: Array(body)))
    }

    public func lineTooLong(limit: Int) -> Decoded { .error(.lineTooLong(limit: limit)) }

    public func unterminatedBody() -> Decoded { .error(.unterminatedPayload(key: pendingSubmit?.key ?? skippedKey)) }

    private static let submitWord = Array("SUBMIT".utf8)

    public mutating func read(line: ArraySlice<UInt8>) -> LineReading<Decoded> {
        let fields = LineFields(line)
        guard fields.count > 0 else { return .blank }
        let command = line[fields[0]]
        if command.elementsEqual(Self.submitWord) { return readSubmit(line, fields) }
        guard let text = String(validating: line, as: UTF8.self) else {
            return .item(.error(.badRequest(key: nil, message: "request line is not valid UTF-8")))
        }
        if command.elementsEqual("AUTH".utf8) { return readAuth(line, fields) }
        if let request = Self.bareRequest(command) {
            guard fields.count == 1 else {
                return .item(.error(.badRequest(key: nil, message: "\(text.split(separator: " ")[0]) takes no arguments")))
            }
            return .item(.request(request))
        }
        return .item(.error(.badRequest(key: nil, message: "unknown command \(LineFields.quoted(command))")))
    }

    /// The request a command word names when it takes no arguments.
    private static func bareRequest(_ command: ArraySlice<UInt8>) -> ClientRequest? {
        if command.elementsEqual("PING".utf8) { return .ping }
        if command.elementsEqual("STATUS".utf8) { return .status }
        if command.elementsEqual("SHARDS".utf8) { return .shards }
        return nil
    }

    /// `AUTH <token>`. A malformed one is its own error, so that a connection that must
    /// authenticate can say what was wrong with it; its message never holds the token.
    private func readAuth(_ line: ArraySlice<UInt8>, _ fields: LineFields) -> LineReading<Decoded> {
        guard fields.count == 2 else {
            return .item(.error(.malformedAuth(message: "usage: AUTH <token> (one token, no spaces)")))
        }
        do throws(ClientToken.Invalid) {
            return .item(.request(.auth(token: try ClientToken(bytes: line[fields[1]]))))
        } catch {
            return .item(.error(.malformedAuth(message: "AUTH: \(error)")))
        }
    }

    private mutating func readSubmit(_ line: ArraySlice<UInt8>, _ fields: LineFields) -> LineReading<Decoded> {
        func bad(_ key: JobKey?, _ message: String) -> Decoded { .error(.badRequest(key: key, message: message)) }
        guard fields.count == 4 else {
            return .item(bad(nil, "usage: SUBMIT <service> <key> <length>"))
        }
        let serviceField = line[fields[1]]
        let keyResult = Result { () throws(JobKey.Invalid) in try JobKey(bytes: line[fields[2]]) }
        let key = try? keyResult.get()
        let length: UInt64
        do throws(LineFields.BadLength) {
            length = try LineFields.length(line[fields[3]])
        } catch {
            return .item(bad(key, error.message))
        }

        // The length is readable, so whatever else is wrong, the payload can be skipped and the
        // connection stays in step.
        let service: ServiceName
        if let cached = lastService, cached.hasBytes(serviceField) {
            service = cached
        } else {
            do throws(ServiceName.Invalid) {
                guard let text = String(validating: serviceField, as: UTF8.self) else { throw .badCharacter("\u{FFFD}") }
                service = try ServiceName(text)
            } catch {
                return skip(bad(key, error.description), key: key, length: length)
            }
            lastService = service
        }
        switch keyResult {
        case .failure(let error):
            return skip(bad(nil, error.description), key: nil, length: length)
        case .success(let key):
            guard length <= UInt64(maxBodyBytes) else {
                return skip(.error(.tooLarge(key: key, length: length, limit: maxBodyBytes)), key: key, length: length)
            }
            pendingSubmit = (service, key)
            return .body(length: Int(length))
        }
    }

    private mutating func skip(_ item: Decoded, key: JobKey?, length: UInt64) -> LineReading<Decoded> {
        pendingSubmit = nil
        skippedKey = key
        return .skip(item, length: length)
    }
}
