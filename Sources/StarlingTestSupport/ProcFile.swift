import Foundation

/// Files of `/proc` (Linux only).
public enum ProcFile {
    /// The whole file at `path`, read to its end (files of `/proc` report a size of 0); nil when
    /// it cannot be opened or read.
    public static func read(_ path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        guard let data = try? file.readToEnd() else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
