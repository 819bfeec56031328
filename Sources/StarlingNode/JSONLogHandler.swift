#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// `--log-format json` (docs/HANDBOOK.md, "log format"): each record is one line on stderr, one
/// JSON object with `time` (RFC 3339, UTC, microseconds), `level`, `node` (the process's id, null
/// before it has one), `service` (the process's service type), `message` and `fields` (the
/// metadata, as strings, objects and arrays). Encoded by `JSONSerialization`, so quotes, newlines
/// and control characters in a message or field are escaped and a record never spans two lines.
public struct JSONLogHandler: LogHandler {
    /// The metadata key that names the process: `Worker` stamps its id on its logger under it.
    /// It becomes the top-level `node` here (and reads `node=<id>` in text lines), not a field.
    public static let nodeKey = "node"

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    private let service: String
    private let output: @Sendable ([UInt8]) -> Void

    /// A handler for a process of `service`; `output` takes each line, newline included (stderr by default).
    public init(
        service: String, metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable ([UInt8]) -> Void = JSONLogHandler.writeToStandardError
    ) {
        self.service = service
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let own = event.metadata { fields.merge(own) { _, new in new } }
        if let error = event.error { fields["error"] = "\(error)" }
        let node = fields.removeValue(forKey: Self.nodeKey).map { "\($0)" }
        output(Self.line(
            at: Self.now(), level: event.level, node: node, service: service, message: event.message.description,
            fields: fields))
    }

    // MARK: Encoding

    /// One record as a line, newline included; an agent wraps a worker's non-JSON stderr line with it.
    static func line(
        at time: timespec, level: Logger.Level, node: String?, service: String, message: String,
        fields: Logger.Metadata
    ) -> [UInt8] {
        let record: [String: Any] = [
            "time": rfc3339(time), "level": level.rawValue, "node": node ?? NSNull(), "service": service,
            "message": message, "fields": fields.mapValues(json),
        ]
        // Strings, dictionaries, arrays and null only: encoding cannot fail, but a log line must not trap.
        guard var bytes = try? [UInt8](JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])) else {
            return Array(#"{"level":"error","message":"a log record could not be encoded as JSON"}"#.utf8) + [0x0A]
        }
        bytes.append(0x0A)
        return bytes
    }

    private static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .dictionary(let dictionary): dictionary.mapValues(json)
        case .array(let array): array.map(json)
        }
    }

    /// The wall clock, read in the shell like every clock (docs/HANDBOOK.md, "shell").
    static func now() -> timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }

    /// `2026-12-01T09:30:05.123456Z`.
    static func rfc3339(_ time: timespec) -> String {
        var seconds = time.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let date = "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))"
        let clock = "\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2))"
        return "\(date)T\(clock).\(padded(Int(time.tv_nsec) / 1_000, 6))Z"
    }

    /// Writes `bytes` to descriptor 2 with as few writes as it takes; a line that cannot be written
    /// (the reader is gone) is dropped rather than stopping the process.
    public static func writeToStandardError(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
