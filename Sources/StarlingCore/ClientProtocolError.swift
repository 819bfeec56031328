/// Why a piece of client input was not a request. Each error tells whether the connection can go
/// on (`isFatal == false`: the decoder has skipped the bad input and stays in step with the client)
/// or must be closed after answering (`isFatal == true`: the decoder cannot find the next request).
public enum ClientProtocolError: Error, Hashable, Sendable {
    /// A complete but malformed line (unknown command, bad arguments, not UTF-8), or a `SUBMIT`
    /// whose length was readable but whose service or key was not; its payload has been skipped.
    /// Recoverable.
    case badRequest(key: JobKey?, message: String)
    /// An `AUTH` line without exactly one well-formed token (docs/PROTOCOL.md, "Authentication").
    /// The message never holds the token. Recoverable where no token is required (answered
    /// `BAD_REQUEST`); before `WELCOME` where one is, `ClientAuthentication` refuses it.
    case malformedAuth(message: String)
    /// A `SUBMIT` announcing more than the payload limit. The decoder skips the payload and its
    /// line end by counting them down, without keeping them. Recoverable.
    case tooLarge(key: JobKey, length: UInt64, limit: Int)
    /// A header line longer than the limit with no line end. Fatal.
    case lineTooLong(limit: Int)
    /// The payload of a `SUBMIT` was not followed by `\r\n` or `\n`, so the length was wrong and
    /// the framing is lost. Fatal.
    case unterminatedPayload(key: JobKey?)

    /// Whether the connection must be closed (after sending `response`).
    public var isFatal: Bool {
        switch self {
        case .badRequest, .malformedAuth, .tooLarge: false
        case .lineTooLong, .unterminatedPayload: true
        }
    }

    /// The key the error is about, if the request got that far.
    public var key: JobKey? {
        switch self {
        case .badRequest(let key, _), .unterminatedPayload(let key): key
        case .tooLarge(let key, _, _): key
        case .lineTooLong, .malformedAuth: nil
        }
    }

    /// The counter it is rejected under (in `STATUS`'s `rejected`), as the heartbeat and peer
    /// codecs' errors have theirs.
    public var reason: String {
        switch self {
        case .badRequest, .malformedAuth: "client_bad_request"
        case .tooLarge: "client_too_large"
        case .lineTooLong: "client_line_too_long"
        case .unterminatedPayload: "client_unterminated_payload"
        }
    }

    public var code: ClientErrorCode {
        switch self {
        case .tooLarge: .tooLarge
        case .badRequest, .malformedAuth, .lineTooLong, .unterminatedPayload: .badRequest
        }
    }

    public var message: String {
        switch self {
        case .badRequest(_, let message), .malformedAuth(let message): message
        case .tooLarge(_, let length, let limit): "payload of \(length) bytes is over the limit of \(limit) bytes"
        case .lineTooLong(let limit): "request line longer than \(limit) bytes"
        case .unterminatedPayload: "payload not followed by a line end: length does not match, closing"
        }
    }

    /// The `ERR` line that answers this error.
    public var response: ClientResponse { .error(key: key, code: code, message: message) }
}

extension ClientProtocolError: CustomStringConvertible {
    public var description: String { "\(code.rawValue) \(key?.value ?? "-"): \(message)" }
}
