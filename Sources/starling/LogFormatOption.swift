import ArgumentParser
import StarlingNode

/// `--log-format`, parsed into `LogFormat` with a clear error for anything else.
struct LogFormatOption: ExpressibleByArgument {
    let format: LogFormat

    init?(argument: String) {
        guard let format = LogFormat(rawValue: argument.lowercased()) else { return nil }
        self.format = format
    }

    var defaultValueDescription: String { format.rawValue }

    static var allValueStrings: [String] { LogFormat.allCases.map(\.rawValue) }
}
