#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore
import TOMLKit

/// Why a service definition file could not be loaded: the file, the key at fault and the reason.
public struct ServiceDefinitionError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// `load(service:directory:)` found no `<service>.toml`.
        case noDefinition
        /// The file or directory cannot be opened or read, or is not a regular file or directory.
        case unreadable
        /// The file is larger than `ServiceDefinitionLoader.maxFileBytes`.
        case tooLarge
        /// The file is not UTF-8 text without NUL bytes.
        case notText
        /// The file is not valid TOML.
        case syntax
        /// A key that is not a service setting (a typo must not pass silently).
        case unknownKey
        /// A value of the wrong TOML type.
        case wrongType
        /// A value of the right type that is out of bounds, or a missing required value.
        case invalidValue
        /// `command[0]` does not name an executable file.
        case badProgram
        /// `service` names another service than the file name does.
        case serviceNotFileName
    }

    public let kind: Kind
    /// The file (or directory) as the caller named it.
    public let file: String
    /// The key at fault, as written in the file (`timeout_ms`, `command[1]`); nil for whole-file problems.
    public let key: String?
    /// The line, when the TOML parser reports one.
    public let line: Int?
    public let column: Int?
    public let reason: String

    public init(kind: Kind, file: String, key: String? = nil, line: Int? = nil, column: Int? = nil, reason: String) {
        self.kind = kind
        self.file = file
        self.key = key
        self.line = line
        self.column = column
        self.reason = reason
    }

    /// `jobs/echo.toml: timeout_ms: must be in 1...86400000, got 0`, or `jobs/echo.toml:3:7: ...`.
    public var description: String {
        var location = file
        if let line { location += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        if kind == .noDefinition { return reason }
        return key.map { "\(location): \($0): \(reason)" } ?? "\(location): \(reason)"
    }
}

/// Reads service definitions from `DIR/<name>.toml` files (docs/HANDBOOK.md, "Service definitions").
/// See `jobs/echo.toml`.
///
/// Every key is one of `ServiceDefinition.Key`; unknown keys are errors. `service` is the file name
/// without `.toml`, and may be written out only as that: workers and agents find a service's
/// definition by its name, so `jobs/echo.toml` saying `service = "resize"` is an error naming both.
/// Exactly one of `handler` (a built-in) and `command` (a program and its arguments) must be
/// given. A relative `command[0]` is resolved, when the file is loaded, against the folder of the
/// file (so a jobs directory can be moved with its programs) and stored as an absolute path; it
/// must name an executable regular file (`PATH` is not searched). Files are at most `maxFileBytes`.
public enum ServiceDefinitionLoader {
    public static let maxFileBytes = 64 * 1024
    /// Bounds `loadAll`, which reads every file it lists.
    public static let maxFilesPerDirectory = 1024
    public static let fileExtension = ".toml"

    /// Loads and validates one file.
    public static func load(file: String) throws(ServiceDefinitionError) -> ServiceDefinition {
        let text = try readText(file)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ServiceDefinitionError(
                kind: .syntax, file: file, line: error.source.begin.line, column: error.source.begin.column,
                reason: "invalid TOML: \(error.description)")
        } catch {
            throw ServiceDefinitionError(kind: .syntax, file: file, reason: "invalid TOML: \(error)")
        }
        var definition = try TableReader(file: file, table: table).definition()
        if case .command(var argv) = definition.handler {
            argv[0] = try resolveProgram(argv[0], file: file)
            definition.handler = .command(argv)
        }
        return definition
    }

    /// Loads `directory/<service>.toml`, failing with `.noDefinition` if there is no such file.
    public static func load(service: ServiceName, directory: String) throws(ServiceDefinitionError)
        -> ServiceDefinition
    {
        let file = join(directory, service.value + fileExtension)
        var info = stat()
        guard lstat(file, &info) == 0 || errno != ENOENT else {
            throw ServiceDefinitionError(
                kind: .noDefinition, file: file,
                reason: "no service definition for \"\(service)\": \(file) does not exist")
        }
        return try load(file: file)
    }

    /// Loads every `*.toml` file in `directory` (hidden files skipped), in name order. Each file
    /// defines the service it is named after, so no two can define the same one. An empty
    /// directory gives an empty result.
    public static func loadAll(directory: String) throws(ServiceDefinitionError) -> [ServiceName: ServiceDefinition] {
        var definitions: [ServiceName: ServiceDefinition] = [:]
        for name in try listDefinitionFiles(directory) {
            let definition = try load(file: join(directory, name))
            definitions[definition.service] = definition
        }
        return definitions
    }

    // MARK: Files

    private static func join(_ directory: String, _ name: String) -> String {
        var directory = directory
        while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
        return directory.isEmpty ? name : directory == "/" ? "/\(name)" : "\(directory)/\(name)"
    }

    private static func systemError(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// The file's text: a regular file of at most `maxFileBytes`, UTF-8 without NUL bytes.
    private static func readText(_ file: String) throws(ServiceDefinitionError) -> String {
        // O_NONBLOCK so that a FIFO cannot hang the open; regular files ignore it.
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            throw ServiceDefinitionError(
                kind: .unreadable, file: file,
                reason: code == ENOENT ? "does not exist" : "cannot open: \(systemError(code))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ServiceDefinitionError(kind: .unreadable, file: file, reason: "cannot stat: \(systemError())")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ServiceDefinitionError(kind: .unreadable, file: file, reason: "is not a regular file")
        }
        let tooLarge = ServiceDefinitionError(
            kind: .tooLarge, file: file, reason: "is larger than \(maxFileBytes) bytes")
        guard info.st_size <= maxFileBytes else { throw tooLarge }
        // One byte more than allowed, in case the file grew since fstat.
        var bytes = [UInt8](repeating: 0, count: maxFileBytes + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got == 0 { break }
            if got < 0 {
                if errno == EINTR { continue }
                throw ServiceDefinitionError(kind: .unreadable, file: file, reason: "cannot read: \(systemError())")
            }
            count += got
        }
        guard count <= maxFileBytes else { throw tooLarge }
        bytes.removeSubrange(count...)
        // The TOML parser takes a C string, so a NUL would silently end the file early.
        guard !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) else {
            throw ServiceDefinitionError(kind: .notText, file: file, reason: "is not UTF-8 text (or contains a NUL byte)")
        }
        return text
    }

    /// Names of the visible `*.toml` entries in `directory`, sorted.
    private static func listDefinitionFiles(_ directory: String) throws(ServiceDefinitionError) -> [String] {
        guard let dir = opendir(directory) else {
            let code = errno
            throw ServiceDefinitionError(
                kind: .unreadable, file: directory,
                reason: code == ENOENT ? "directory does not exist" : "cannot open directory: \(systemError(code))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix("."), name.hasSuffix(fileExtension), name.count > fileExtension.count else {
                continue
            }
            names.append(name)
            guard names.count <= maxFilesPerDirectory else {
                throw ServiceDefinitionError(
                    kind: .unreadable, file: directory,
                    reason: "holds more than \(maxFilesPerDirectory) \(fileExtension) files")
            }
        }
        return names.sorted()
    }

    /// The absolute path of `program`, which must be an executable regular file; a relative one is
    /// taken from the folder of `file`.
    private static func resolveProgram(_ program: String, file: String) throws(ServiceDefinitionError) -> String {
        let key = "\(ServiceDefinition.Key.command.rawValue)[0]"
        var path = program
        if !program.hasPrefix("/") {
            var folder = folder(of: file)
            if !folder.hasPrefix("/") {
                guard let current = currentDirectory() else {
                    throw ServiceDefinitionError(
                        kind: .badProgram, file: file, key: key,
                        reason: "cannot resolve \"\(program)\": the working directory is unknown (\(systemError()))")
                }
                folder = folder == "." ? current : join(current, folder)
            }
            path = join(folder, program)
        }
        let shown = path == program ? "\"\(program)\"" : "\"\(program)\" (\(path))"
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            let why = code == ENOENT ? "does not exist" : systemError(code)
            throw ServiceDefinitionError(
                kind: .badProgram, file: file, key: key, reason: "program \(shown) \(why); PATH is not searched")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ServiceDefinitionError(kind: .badProgram, file: file, key: key, reason: "program \(shown) is not a regular file")
        }
        guard access(path, X_OK) == 0 else {
            throw ServiceDefinitionError(kind: .badProgram, file: file, key: key, reason: "program \(shown) is not executable")
        }
        return path
    }

    /// The folder part of `file` as written (`.` for a bare name): `jobs/echo.toml` -> `jobs`.
    private static func folder(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        let folder = file[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }

    private static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Turns one parsed file into a validated `ServiceDefinition`, naming the key in every error.
private struct TableReader {
    typealias Key = ServiceDefinition.Key

    let file: String
    let table: TOMLTable

    func definition() throws(ServiceDefinitionError) -> ServiceDefinition {
        try rejectUnknownKeys()
        var definition = ServiceDefinition(service: try service(), handler: try handler())
        if let value = try integer(.concurrency) { definition.concurrency = value }
        if let value = try integer(.timeoutMs) { definition.timeoutMs = Int64(value) }
        if let value = try integer(.minWorkers) { definition.minWorkers = value }
        if let value = try integer(.maxWorkers) { definition.maxWorkers = value }
        if let value = try integer(.scaleUpBacklog) { definition.scaleUpBacklog = value }
        if let value = try integer(.scaleDownIdleMs) { definition.scaleDownIdleMs = Int64(value) }
        if let value = try integer(.maxPayloadBytes) { definition.maxPayloadBytes = value }
        if let value = try integer(.maxResultBytes) { definition.maxResultBytes = value }
        do {
            try definition.validate()
        } catch {
            throw invalid(error.key.rawValue, error.reason)
        }
        return definition
    }

    private func rejectUnknownKeys() throws(ServiceDefinitionError) {
        for key in table.keys.sorted() {
            guard Key(rawValue: key) != nil, table[key] != nil else {
                let known = Key.allCases.map(\.rawValue)
                let hint = known.first { editDistance($0, key) <= 2 }.map { "did you mean \"\($0)\"? " } ?? ""
                throw ServiceDefinitionError(
                    kind: .unknownKey, file: file, key: key,
                    reason: "unknown key; \(hint)known keys: \(known.joined(separator: ", "))")
            }
        }
    }

    /// The file name without `.toml`; `service`, when written out, must say the same.
    private func service() throws(ServiceDefinitionError) -> ServiceName {
        let written = try string(.service)
        if let written {
            do {
                _ = try ServiceName(written)
            } catch {
                throw invalid(Key.service.rawValue, "\"\(written)\": \(error)")
            }
        }
        let fileName = String(file.split(separator: "/").last ?? "")
        var base = fileName
        if base.hasSuffix(ServiceDefinitionLoader.fileExtension) {
            base.removeLast(ServiceDefinitionLoader.fileExtension.count)
        }
        if let written, written != base {
            throw ServiceDefinitionError(
                kind: .serviceNotFileName, file: file, key: Key.service.rawValue,
                reason: "says \"\(written)\" but the file is named \"\(fileName)\": a service's definition must be "
                    + "\(written)\(ServiceDefinitionLoader.fileExtension), where its workers look for it; rename the file "
                    + "or change service to \"\(base)\"")
        }
        do {
            return try ServiceName(base)
        } catch {
            throw invalid(Key.service.rawValue, "the file name \"\(base)\" is no service name (\(error))")
        }
    }

    private func handler() throws(ServiceDefinitionError) -> ServiceDefinition.Handler {
        let builtins = ServiceDefinition.Builtin.allCases.map(\.rawValue).joined(separator: ", ")
        let name = try string(.handler)
        let argv = try stringArray(.command)
        switch (name, argv) {
        case (nil, nil):
            throw invalid(Key.handler.rawValue, "missing: give handler (one of \(builtins)) or command = [\"program\", args...]")
        case (.some, .some):
            throw invalid(Key.handler.rawValue, "give either handler (a built-in) or command (a program), not both")
        case (.some(let name), nil):
            guard let builtin = ServiceDefinition.Builtin(rawValue: name) else {
                throw invalid(Key.handler.rawValue, "unknown built-in \"\(name)\"; use one of \(builtins), or command")
            }
            return .builtin(builtin)
        case (nil, .some(let argv)):
            return .command(argv)
        }
    }

    // MARK: Typed values

    private func string(_ key: Key) throws(ServiceDefinitionError) -> String? {
        guard let value = table[key.rawValue] else { return nil }
        guard let text = value.string else { throw wrongType(key.rawValue, "a string", value.type) }
        return text
    }

    private func stringArray(_ key: Key) throws(ServiceDefinitionError) -> [String]? {
        guard let value = table[key.rawValue] else { return nil }
        guard let array = value.array else { throw wrongType(key.rawValue, "an array of strings", value.type) }
        var strings: [String] = []
        for index in 0..<array.count {
            let element = array[index]
            guard let text = element.string else { throw wrongType("\(key.rawValue)[\(index)]", "a string", element.type) }
            strings.append(text)
        }
        return strings
    }

    private func integer(_ key: Key) throws(ServiceDefinitionError) -> Int? {
        guard let value = table[key.rawValue] else { return nil }
        guard let number = value.int else { throw wrongType(key.rawValue, "an integer", value.type) }
        return number
    }

    private func wrongType(_ key: String, _ expected: String, _ actual: TOMLType) -> ServiceDefinitionError {
        let article = "aeiou".contains(actual.description.first ?? "x") ? "an" : "a"
        return ServiceDefinitionError(
            kind: .wrongType, file: file, key: key, reason: "must be \(expected), got \(article) \(actual)")
    }

    private func invalid(_ key: String, _ reason: String) -> ServiceDefinitionError {
        ServiceDefinitionError(kind: .invalidValue, file: file, key: key, reason: reason)
    }
}

/// Levenshtein distance, for "did you mean" hints on short keys.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
