/// The code of an `ERR` answer: the job was not run.
public enum ClientErrorCode: String, Hashable, Sendable, CaseIterable {
    /// No worker of that service type is known.
    case noService = "NO_SERVICE"
    /// The payload is over the size limit.
    case tooLarge = "TOO_LARGE"
    /// The request could not be understood.
    case badRequest = "BAD_REQUEST"
    /// A bounded queue or in-flight window is full: try again later.
    case busy = "BUSY"
    /// The service exists but cannot take the job now (e.g. no primary during a handover).
    case unavailable = "UNAVAILABLE"

    /// The message used when an `ERR` would otherwise have none.
    public var defaultMessage: String {
        switch self {
        case .noService: "no such service"
        case .tooLarge: "payload too large"
        case .badRequest: "bad request"
        case .busy: "busy, try again later"
        case .unavailable: "service unavailable"
        }
    }
}

/// One answer of the TCP client protocol. Output lines always end in `\r\n`.
public enum ClientResponse: Hashable, Sendable {
    /// `PONG\r\n`
    case pong
    /// `STATUS <n>\r\n<json>\r\n`
    case status(json: [UInt8])
    /// `OK <key> <len>\r\n<result>\r\n`
    case ok(key: JobKey, result: [UInt8])
    /// `FAIL <key> <len>\r\n<text>\r\n`: the handler ran and failed.
    case fail(key: JobKey, text: [UInt8])
    /// `ERR <key-or-dash> <CODE> <message>\r\n`: the job was not run. The message is sanitised
    /// on encoding: control characters (CR and LF included) become spaces.
    case error(key: JobKey?, code: ClientErrorCode, message: String)

    public func encode() -> [UInt8] {
        var bytes: [UInt8] = []
        switch self {
        case .status(let body), .ok(_, let body), .fail(_, let body): bytes.reserveCapacity(body.count + 96)
        case .pong, .error: break
        }
        encode(into: &bytes)
        return bytes
    }

    /// Appends the encoded answer to `buffer`, so a writer can batch answers into one write.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .pong:
            buffer.append(contentsOf: "PONG\r\n".utf8)
        case .status(let json):
            Self.appendFramed("STATUS", key: nil, json, to: &buffer)
        case .ok(let key, let result):
            Self.appendFramed("OK", key: key, result, to: &buffer)
        case .fail(let key, let text):
            Self.appendFramed("FAIL", key: key, text, to: &buffer)
        case .error(let key, let code, let message):
            var text = Self.sanitised(message)
            if text.isEmpty { text = code.defaultMessage }
            buffer.append(contentsOf: "ERR \(key?.value ?? "-") \(code.rawValue) \(text)\r\n".utf8)
        }
    }

    /// Maximum bytes of an `ERR` message on the wire; longer messages are cut (at a character boundary).
    public static let maxMessageBytes = 512

    /// `<word> [<key>] <body length>\r\n<body>\r\n`, without building a header string.
    private static func appendFramed(_ word: StaticString, key: JobKey?, _ body: [UInt8], to buffer: inout [UInt8]) {
        word.withUTF8Buffer { buffer.append(contentsOf: $0) }
        buffer.append(0x20)
        if let key {
            buffer.append(contentsOf: key.value.utf8)
            buffer.append(0x20)
        }
        buffer.appendLengthAndBody(body)
    }

    /// One line of printable text: C0/C1 controls and DEL become spaces, surrounding spaces go,
    /// and the result is at most `maxMessageBytes` bytes of UTF-8.
    static func sanitised(_ message: String) -> String {
        var scalars = String.UnicodeScalarView()
        var bytes = 0
        for scalar in message.unicodeScalars {
            let clean: Unicode.Scalar = (scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
                || scalar == "\u{2028}" || scalar == "\u{2029}") ? " " : scalar
            let width = UTF8.width(clean)
            if bytes + width > maxMessageBytes { break }
            bytes += width
            scalars.append(clean)
        }
        return String(scalars).trimmingSpaces()
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// The answers to `AUTH` (docs/PROTOCOL.md, "Authentication"): the connection's, not a job's, so
/// not `ClientResponse`s. A client that authenticates reads them with `ClientSessionDecoder`; one
/// that never sends `AUTH` to a node without tokens never gets one.
public enum ClientAuthAnswer: Hashable, Sendable {
    /// `WELCOME\r\n`: the token was accepted (or the node has none); requests may follow.
    case welcome
    /// `ERR - UNAUTHORIZED <message>\r\n`: no `AUTH` first, or a wrong or malformed token. The node
    /// closes the connection once this line is written. The message is sanitised on encoding, as
    /// an `ERR`'s is, and never holds a token.
    case unauthorized(message: String)

    /// The code word of `ERR - UNAUTHORIZED`. Not a `ClientErrorCode`: those are about jobs and go
    /// between nodes in `refused` frames; this one is about the connection only.
    public static let unauthorizedCode = "UNAUTHORIZED"
    public static let defaultUnauthorizedMessage = "authentication required"

    public func encode() -> [UInt8] {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return bytes
    }

    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .welcome:
            buffer.append(contentsOf: "WELCOME\r\n".utf8)
        case .unauthorized(let message):
            var text = ClientResponse.sanitised(message)
            if text.isEmpty { text = Self.defaultUnauthorizedMessage }
            buffer.append(contentsOf: "ERR - \(Self.unauthorizedCode) \(text)\r\n".utf8)
        }
    }
}
