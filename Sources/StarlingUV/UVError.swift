import CLibUV

/// A failed libuv call: the negative code, its symbolic name and message, and the operation that failed.
public struct UVError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The negative libuv error code (e.g. `UV_ECONNREFUSED`).
    public let code: Int32
    /// The symbolic name from `uv_err_name`, e.g. `"ECONNREFUSED"`; compare against this.
    public let name: String
    /// The human-readable message from `uv_strerror`.
    public let message: String
    /// What was being attempted, e.g. `"uv_tcp_connect 127.0.0.1:9"`.
    public let operation: String

    /// Only `uvCheck` builds errors, so every code takes the same path.
    init(code: Int32, operation: String) {
        self.code = code
        self.name = String(cString: uv_err_name(code))
        self.message = String(cString: uv_strerror(code))
        self.operation = operation
    }

    public var description: String { "\(operation): \(name) (\(message))" }
}

/// The single chokepoint for libuv return codes: negative means failure and is thrown as `UVError`.
///
/// Returns non-negative codes unchanged because some calls (e.g. `uv_udp_try_send`) return a count.
@discardableResult
func uvCheck(_ code: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Int32 {
    guard code < 0 else { return code }
    throw UVError(code: code, operation: operation())
}

/// The status a libuv callback received, as an optional error; goes through `uvCheck`.
func uvStatus(_ status: Int32, _ operation: @autoclosure () -> String) -> UVError? {
    do {
        try uvCheck(status, operation())
        return nil
    } catch {
        return error
    }
}

/// Error codes this module synthesises for misuse; they still go through `uvCheck`.
enum UVCode {
    /// Used for operations on a handle that is closing or closed.
    static let badHandle = UV_EBADF.rawValue
    /// Used for malformed arguments (bad address text, wrong byte count).
    static let invalid = UV_EINVAL.rawValue
    static let endOfFile = UV_EOF.rawValue
    static let noSuchProcess = UV_ESRCH.rawValue
}

/// Throws a synthesised error through `uvCheck`; for misuse this module detects before calling libuv.
func uvFail(_ code: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Never {
    precondition(code < 0, "uvFail needs a negative code")
    try uvCheck(code, operation())
    preconditionFailure("unreachable: uvCheck throws for negative codes")
}
