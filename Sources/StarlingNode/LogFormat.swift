import Logging
import StarlingCore

/// How a process of the heartbeat group writes its log to stderr (`--log-format`;
/// docs/HANDBOOK.md, "log format"). An agent starts its workers with its own.
public enum LogFormat: String, CaseIterable, Sendable {
    /// swift-log's `StreamLogHandler`: one line of time, level, label, metadata and message.
    case text
    /// One JSON object per line (`JSONLogHandler`).
    case json

    /// The handler for every logger of a process of `service`.
    public func handler(label: String, service: ServiceName, level: Logger.Level) -> any LogHandler {
        var handler: any LogHandler
        switch self {
        case .text: handler = StreamLogHandler.standardError(label: label)
        case .json: handler = JSONLogHandler(service: service.value)
        }
        handler.logLevel = level
        return handler
    }
}
