import StarlingClient
import StarlingCore

/// What the demo makes of one answer to a job whose correct result it knows.
public enum DemoAnswerCheck: Equatable, Sendable {
    /// `OK` with the expected result.
    case ok
    /// `OK` with another result.
    case wrong(problem: String)
    /// `FAIL`.
    case failed(problem: String)
    /// `BUSY` or `UNAVAILABLE` within the first 10 s: submit again with the same key, as the
    /// protocol asks of clients (docs/PROTOCOL.md).
    case retry
    /// Any other `ERR`, or `BUSY`/`UNAVAILABLE` after 10 s of retries.
    case error(problem: String)

    /// Judges `answer` to job `key` of `service`, which correctly answers `expected`, after
    /// `waited` since its first submission.
    public init(answer: JobAnswer, expected: [UInt8], service: String, key: String, waited: Duration) {
        switch answer {
        case .ok(let result) where result == expected:
            self = .ok
        case .ok(let result):
            self = .wrong(problem: "\(service) job \(key): wrong result '\(Self.preview(result))', expected '\(Self.preview(expected))'")
        case .failed(let text):
            self = .failed(problem: "\(service) job \(key): FAIL \(Self.preview(Array(text.utf8)))")
        case .error(let code, _) where (code == .busy || code == .unavailable) && waited < .seconds(10):
            self = .retry
        case .error(let code, let message):
            self = .error(problem: "\(service) job \(key): ERR \(code.rawValue) \(message)")
        }
    }

    /// The line to print about it, when it went wrong.
    public var problem: String? {
        switch self {
        case .ok, .retry: nil
        case .wrong(let problem), .failed(let problem), .error(let problem): problem
        }
    }

    /// Counts it (an answer that ends the job; `retry` counts as `retried` instead).
    public func count(into counts: inout DemoJobCounts) {
        switch self {
        case .ok: counts.ok += 1
        case .wrong: counts.wrong += 1
        case .failed: counts.failed += 1
        case .error: counts.errors += 1
        case .retry: counts.retried += 1
        }
    }

    /// At most 80 bytes of `bytes` as text, control characters shown as `?`.
    static func preview(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(80), as: UTF8.self)
        return String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
