/// A `sleep` argument unique to one test run (`987654.NNNNNN` seconds, never reached), so a test
/// can find the `sleep` processes it started, and only those, in `/proc` (Linux only).
public struct SleepMarker: Sendable {
    /// The argument to pass to `sleep`.
    public let value: String

    public init() {
        value = "987654.\(UInt32.random(in: 100_000...999_999))"
    }

    /// The running (not zombie) processes whose arguments are exactly `sleep value`.
    public var sleepers: [RunningProcess] {
        RunningProcess.all().filter {
            let arguments = $0.arguments
            return arguments.count == 2 && arguments[0].hasSuffix("sleep") && arguments[1] == value
        }
    }
}
