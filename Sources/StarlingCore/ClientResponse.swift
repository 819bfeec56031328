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
    /// Always with key `-`: no `AUTH` first where the node wants a client token, or a wrong or
    /// malformed one; the node closes the connection once it is written (docs/PROTOCOL.md,
    /// "Authentication").
    case unauthorized = "UNAUTHORIZED"

    /// The message used when an `ERR` would otherwise have none.
    public var defaultMessage: String {
        switch self {
        case .noService: "no such service"
        case .tooLarge: "payload too large"
        case .badRequest: "bad request"
        case .busy: "busy, try again later"
        case .unavailable: "service unavailable"
        case .unauthorized: "authentication required"
        }
    }
}

/// One answer of the TCP client protocol. Output lines always end in `\r\n`.
public enum ClientResponse: Hashable, Sendable {
    /// `PONG\r\n`
    case pong
    /// `WELCOME\r\n`: the answer to an accepted `AUTH` (docs/PROTOCOL.md, "Authentication").
    case welcome
    /// `STATUS <n>\r\n<json>\r\n`
    case status(json: [UInt8])
    /// `SHARDS <service> <16 hex digits>\r\n`: the answer to `SHARDS`, the node's own service type
    /// and the key shards of it the node holds (docs/PROTOCOL.md, "Key shards").
    case shards(service: ServiceName, shards: KeyShardSet)
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
        case .pong, .welcome, .shards, .error: break
        }
        encode(into: &bytes)
        return bytes
    }

    /// Appends the encoded answer to `buffer`, so a writer can batch answers into one write.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .pong:
            buffer.append(contentsOf: "PONG\r\n".utf8)
        case .welcome:
            buffer.append(contentsOf: "WELCOME\r\n".utf8)
        case .status(let json):
            Self.appendFramed("STATUS", key: nil, json, to: &buffer)
        case .shards(let service, let shards):
            buffer.append(contentsOf: "SHARDS ".utf8)
            buffer.append(contentsOf: service.value.utf8)
            buffer.append(0x20)
            buffer.append(contentsOf: shards.hex.utf8)
            buffer.append(contentsOf: "\r\n".utf8)
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

    /// The answer's line without its body, for a message about an unexpected answer.
    public var summary: String {
        switch self {
        case .pong: "PONG"
        case .welcome: "WELCOME"
        case .status: "STATUS"
        case .shards(let service, let shards): "SHARDS \(service) \(shards.hex)"
        case .ok(let key, _): "OK \(key)"
        case .fail(let key, _): "FAIL \(key)"
        case .error(let key, let code, let message): "ERR \(key?.value ?? "-") \(code.rawValue) \(message)"
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
