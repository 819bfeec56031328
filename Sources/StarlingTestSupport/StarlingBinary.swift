import Foundation

/// Where the `starling` program is, for the tests, the bench and the demo that start it.
public enum StarlingBinary {
    /// This program's own path (`/proc/self/exe`).
    public static func selfExecutable() throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    /// `STARLING_BINARY` when set; else the `starling` next to this program (a test runner or the
    /// bench lives in the same build products folder), or next to `Bundle.main`; else, with
    /// `searchBuildFolders`, the package's own `.build/debug` and `.build/release`.
    public static func locate(searchBuildFolders: Bool = false) throws(NotFound) -> String {
        if let override = ProcessInfo.processInfo.environment["STARLING_BINARY"] { return override }
        let runner = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var candidates = [runner.deletingLastPathComponent().appendingPathComponent("starling").path]
        if let bundle = Bundle.main.executableURL {
            candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("starling").path)
        }
        if searchBuildFolders {
            // This file is Sources/StarlingTestSupport/StarlingBinary.swift of the package.
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            candidates += ["debug", "release"].map { root.appendingPathComponent(".build/\($0)/starling").path }
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw NotFound(candidates: candidates)
        }
        return found
    }

    /// No `starling` binary was found.
    public struct NotFound: Error, CustomStringConvertible {
        public let candidates: [String]

        public var description: String {
            "starling binary not found; tried \(candidates.joined(separator: ", ")). Build it first, in the same "
                + "configuration (swift build, or swift build -c release), or set STARLING_BINARY to its path"
        }
    }
}
