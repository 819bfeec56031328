#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Why a secret file (cluster keys, client tokens) was refused; the message names the file.
public struct SecretFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String

    init(_ path: String, _ problem: String) {
        description = "\(path): \(problem)"
    }
}

/// Reads a file of secrets, one per line, as ssh reads a private key: it must be a regular file that
/// neither group nor others may access, and it is bounded in size and entries. Blank lines and lines
/// starting with `#` are skipped; surrounding whitespace is trimmed (docs/SECURITY.md).
enum SecretFile {
    static let maxBytes = 64 * 1024
    static let maxEntries = 64

    static func entries(path: String, what: String) throws(SecretFileError) -> [String] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            throw SecretFileError(path, "cannot open the \(what) file: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw SecretFileError(path, "cannot stat the \(what) file: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SecretFileError(path, "the \(what) file is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw SecretFileError(
                path, "the \(what) file has mode \(String(mode, radix: 8)), so group or others may read it; "
                    + "run `chmod 600 \(path)`")
        }
        guard info.st_size <= maxBytes else {
            throw SecretFileError(path, "the \(what) file is \(info.st_size) bytes, over the \(maxBytes)-byte limit")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw SecretFileError(path, "cannot read the \(what) file: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            filled += count
        }
        guard filled <= maxBytes else { throw SecretFileError(path, "the \(what) file grew over \(maxBytes) bytes while read") }
        guard let text = String(validating: bytes[..<filled], as: UTF8.self) else {
            throw SecretFileError(path, "the \(what) file is not UTF-8 text")
        }
        let entries = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !entries.isEmpty else { throw SecretFileError(path, "the \(what) file holds no entry") }
        guard entries.count <= maxEntries else {
            throw SecretFileError(path, "the \(what) file holds \(entries.count) entries, over the limit of \(maxEntries)")
        }
        return entries
    }
}
