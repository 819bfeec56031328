#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingNode

/// Key and token files for process tests: fresh paths, mode 600, as a worker demands.
enum SecretFiles {
    /// Writes `lines` to a new file only the owner may read; returns its path.
    static func write(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-secret-\(UUID().uuidString.prefix(8))").path
        try rewrite(path, lines)
        return path
    }

    /// Replaces a file's contents in place, keeping mode 600 (rotation rewrites files, then SIGHUP).
    static func rewrite(_ path: String, _ lines: [String]) throws {
        let data = Data((lines.joined(separator: "\n") + "\n").utf8)
        let created = FileManager.default.createFile(
            atPath: path + ".new", contents: data, attributes: [.posixPermissions: 0o600])
        guard created else { throw CocoaError(.fileWriteUnknown) }
        // rename(2) replaces at once: a reader sees the old file or the new one, never a half.
        guard rename(path + ".new", path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// A new cluster key file holding one fresh key; returns its path and the key.
    static func newClusterKey() throws -> (path: String, key: String) {
        let key = ClusterKeys.generateLine()
        return (try write([key]), key)
    }
}
