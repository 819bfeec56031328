/// nats-server's text protocol (benchmarks/README.md, "NATS"): every operation is a control
/// line ended by CRLF whose fields are separated by spaces or tabs, operation names in any case;
/// `MSG` and `HMSG` are followed by a payload of the size the line gives, and a CRLF.
///
/// The server sends `INFO {json}`, `MSG <subject> <sid> [reply-to] <#bytes>`, `HMSG <subject>
/// <sid> [reply-to] <#header bytes> <#total bytes>`, `PING`, `PONG`, `+OK` and `-ERR <text>`;
/// the client `CONNECT {json}`, `SUB <subject> [queue group] <sid>`, `PUB <subject> [reply-to]
/// <#bytes>`, `PING` and `PONG`.
enum NATSServerOperation: Sendable {
    case info
    case message(NATSMessage)
    case ping
    case pong
    case ok
    case error(String)
}

/// A `MSG` (or `HMSG`) delivered to one of the connection's subscriptions.
struct NATSMessage: Sendable {
    var subject: ArraySlice<UInt8>
    var sid: ArraySlice<UInt8>
    var replyTo: ArraySlice<UInt8>?
    /// The header block of an `HMSG` (the bench never asks for headers, so the server should send
    /// none; a reply that has them is not an echo).
    var headers: ArraySlice<UInt8>?
    var payload: ArraySlice<UInt8>
}

enum NATSCodec {
    /// nats-server's default `max_control_line`: a longer line is a protocol error, not a reason
    /// to buffer without end.
    static let maxControlLine = 4_096
    /// nats-server's `max_payload` cannot exceed 64 MB; anything larger is a corrupt size.
    static let maxPayloadBytes = 64 << 20

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")

    // MARK: - Client to server

    /// `CONNECT` with verbose off (no `+OK` per operation) and no echo of the connection's own
    /// publications; `headers` off, so replies come as plain `MSG`.
    static func appendConnect(name: String, to out: inout [UInt8]) {
        let safeName = String(name.unicodeScalars.filter { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 })
        out.append(contentsOf: Array(("CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,"
            + "\"name\":\"\(safeName)\",\"lang\":\"swift\",\"version\":\"0.1.0\",\"protocol\":1,\"echo\":false,"
            + "\"headers\":false,\"no_responders\":false}\r\n").utf8))
    }

    static func appendSubscribe(subject: String, queue: String?, sid: Int, to out: inout [UInt8]) {
        precondition(isToken(subject) && (queue.map(isToken) ?? true), "bad NATS subject or queue")
        out.append(contentsOf: Array("SUB \(subject) \(queue.map { $0 + " " } ?? "")\(sid)\r\n".utf8))
    }

    /// `PUB subject [reply] n`, the payload and CRLF. `subject` and `replyTo` are the bench's own
    /// (checked) or came from the server in a `MSG` line, where they were single fields already.
    static func appendPublish(subject: some Collection<UInt8>, replyTo: (some Collection<UInt8>)?,
                              payload: some Collection<UInt8>, to out: inout [UInt8]) {
        out.append(contentsOf: [0x50, 0x55, 0x42, space])  // "PUB "
        out.append(contentsOf: subject)
        out.append(space)
        if let replyTo {
            out.append(contentsOf: replyTo)
            out.append(space)
        }
        appendDecimal(payload.count, to: &out)
        out.append(cr)
        out.append(lf)
        out.append(contentsOf: payload)
        out.append(cr)
        out.append(lf)
    }

    static func appendPing(to out: inout [UInt8]) { out.append(contentsOf: [0x50, 0x49, 0x4E, 0x47, cr, lf]) }
    static func appendPong(to out: inout [UInt8]) { out.append(contentsOf: [0x50, 0x4F, 0x4E, 0x47, cr, lf]) }

    private static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        precondition(value >= 0)
        var digits: [UInt8] = []
        var rest = value
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        out.append(contentsOf: digits.reversed())
    }

    /// A subject, queue group or sid the bench writes: printable ASCII, no field separators.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 256 && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    // MARK: - Server to client

    /// Takes the next complete operation from `buffer` at `offset`, advancing `offset`; nil if
    /// more bytes are needed. Throws on anything malformed: an over-long control line, an unknown
    /// operation, a wrong field count, a size that is not a bounded decimal, a payload not ended
    /// by CRLF. Never traps on hostile input.
    static func nextOperation(_ buffer: [UInt8], offset: inout Int) throws(WireError) -> NATSServerOperation? {
        let available = buffer.count - offset
        guard available > 0 else { return nil }
        let searchEnd = offset + min(available, maxControlLine + 2)
        guard let newline = buffer[offset..<searchEnd].firstIndex(of: lf) else {
            if available > maxControlLine + 1 { throw WireError("NATS control line over \(maxControlLine) bytes") }
            return nil
        }
        var lineEnd = newline
        if lineEnd > offset && buffer[lineEnd - 1] == cr { lineEnd -= 1 }
        let line = buffer[offset..<lineEnd]
        let fields = split(line)
        guard let name = fields.first else { throw WireError("empty NATS control line") }
        let afterLine = newline + 1
        switch upper(name) {
        case "MSG":
            // MSG <subject> <sid> [reply-to] <#bytes>
            guard fields.count == 4 || fields.count == 5 else { throw WireError("MSG with \(fields.count - 1) fields") }
            let size = try decimal(fields[fields.count - 1], "MSG size")
            guard let payload = try payloadRange(buffer, from: afterLine, size: size) else { return nil }
            offset = payload.upperBound + 2
            return .message(NATSMessage(subject: fields[1], sid: fields[2], replyTo: fields.count == 5 ? fields[3] : nil,
                                        headers: nil, payload: buffer[payload]))
        case "HMSG":
            // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
            guard fields.count == 5 || fields.count == 6 else { throw WireError("HMSG with \(fields.count - 1) fields") }
            let headerSize = try decimal(fields[fields.count - 2], "HMSG header size")
            let total = try decimal(fields[fields.count - 1], "HMSG total size")
            guard headerSize <= total else { throw WireError("HMSG header size \(headerSize) over its total \(total)") }
            guard let whole = try payloadRange(buffer, from: afterLine, size: total) else { return nil }
            offset = whole.upperBound + 2
            let headerEnd = whole.lowerBound + headerSize
            return .message(NATSMessage(subject: fields[1], sid: fields[2], replyTo: fields.count == 6 ? fields[3] : nil,
                                        headers: buffer[whole.lowerBound..<headerEnd],
                                        payload: buffer[headerEnd..<whole.upperBound]))
        case "PING":
            offset = afterLine
            return .ping
        case "PONG":
            offset = afterLine
            return .pong
        case "+OK":
            offset = afterLine
            return .ok
        case "-ERR":
            offset = afterLine
            let text = line[name.endIndex...].drop { $0 == space || $0 == tab }
            return .error(String(decoding: text.prefix(200), as: UTF8.self))
        case "INFO":
            // The server's JSON is not needed: the bench's payloads are far below any max_payload.
            guard fields.count >= 2 else { throw WireError("INFO without a body") }
            offset = afterLine
            return .info
        default:
            throw WireError("unknown NATS operation '\(String(decoding: name.prefix(16), as: UTF8.self))'")
        }
    }

    /// The payload's range when all of it and its CRLF are in `buffer`; nil if more is needed.
    private static func payloadRange(_ buffer: [UInt8], from start: Int, size: Int) throws(WireError) -> Range<Int>? {
        guard buffer.count - start >= size + 2 else { return nil }
        let end = start + size
        guard buffer[end] == cr, buffer[end + 1] == lf else { throw WireError("NATS payload of \(size) bytes not ended by CRLF") }
        return start..<end
    }

    private static func split(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        line.split(whereSeparator: { $0 == space || $0 == tab })
    }

    private static func upper(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix(8).map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// A size field: decimal digits only, at most `maxPayloadBytes`.
    private static func decimal(_ field: ArraySlice<UInt8>, _ what: String) throws(WireError) -> Int {
        guard !field.isEmpty, field.count <= 9, field.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw WireError("\(what) '\(String(decoding: field.prefix(16), as: UTF8.self))' is not a decimal size")
        }
        let value = field.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard value <= maxPayloadBytes else { throw WireError("\(what) \(value) over the \(maxPayloadBytes)-byte limit") }
        return value
    }
}

extension LoopbackSocket {
    /// The next NATS operation already received, without blocking; nil if none is complete.
    func bufferedNATSOperation() throws(WireError) -> NATSServerOperation? {
        try parse { buffer, offset throws(WireError) in try NATSCodec.nextOperation(buffer, offset: &offset) }
    }

    /// The next NATS operation, waiting for it at most `timeoutMs` (-1: for ever); nil on timeout.
    func receiveNATS(timeoutMs: Int32) throws(WireError) -> NATSServerOperation? {
        let deadline = timeoutMs < 0 ? UInt64.max : monotonicNs() + UInt64(timeoutMs) * 1_000_000
        while true {
            if let operation = try bufferedNATSOperation() { return operation }
            let now = monotonicNs()
            guard now < deadline else { return nil }
            _ = try fill(timeoutMs: timeoutMs < 0 ? -1 : Int32((deadline - now) / 1_000_000) + 1)
        }
    }
}
