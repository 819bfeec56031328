import Foundation
import StarlingCore
import StarlingNode
import Testing

/// A unique temporary directory; tests remove it with `defer { dir.remove() }`.
private struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-jobs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `text` to `name` and returns the file's path.
    @discardableResult
    func write(_ name: String, _ text: String, permissions: Int? = nil) throws -> String {
        try write(name, bytes: Array(text.utf8), permissions: permissions)
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8], permissions: Int? = nil) throws -> String {
        let file = "\(path)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        if let permissions {
            try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: file)
        }
        return file
    }
}

/// The repository root, found from this file's path.
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite struct ServiceDefinitionLoaderTests {
    /// The error loading `text` as `name` gives; records an issue if it loads.
    private func loadError(
        _ text: String, name: String = "svc.toml", sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ServiceDefinitionError? {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let file = try dir.write(name, text)
        do {
            let definition = try ServiceDefinitionLoader.load(file: file)
            Issue.record("loaded \(definition)", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(error.file == file, sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(file), "\(error)", sourceLocation: sourceLocation)
            return error
        }
    }

    private func expectError(
        _ text: String, _ kind: ServiceDefinitionError.Kind, key: String?, containing fragment: String = "",
        name: String = "svc.toml", sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        guard let error = try loadError(text, name: name, sourceLocation: sourceLocation) else { return }
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.key == key, "\(error)", sourceLocation: sourceLocation)
        if let key { #expect(error.description.contains(": \(key): "), "\(error)", sourceLocation: sourceLocation) }
        if !fragment.isEmpty {
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func loadsEveryKey() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let file = try dir.write("echo.toml", """
            service = "echo"
            handler = "echo"
            concurrency = 64
            timeout_ms = 5000
            min_workers = 2
            max_workers = 3
            scale_up_backlog = 10
            scale_down_idle_ms = 0
            max_payload_bytes = 2048
            max_result_bytes = 33554432
            """)
        let definition = try ServiceDefinitionLoader.load(file: file)
        #expect(definition == ServiceDefinition(
            service: try ServiceName("echo"), handler: .builtin(.echo), concurrency: 64, timeoutMs: 5000,
            minWorkers: 2, maxWorkers: 3, scaleUpBacklog: 10, scaleDownIdleMs: 0,
            maxPayloadBytes: 2048, maxResultBytes: 32 << 20))
    }

    @Test func serviceIsTheFileNameAndMayBeWrittenOutOnlyAsThat() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let plain = try ServiceDefinitionLoader.load(file: try dir.write("resize-v2.toml", "handler = \"sleep\"\n"))
        #expect(plain == ServiceDefinition(service: try ServiceName("resize-v2"), handler: .builtin(.sleep)))
        let otherExtension = try ServiceDefinitionLoader.load(file: try dir.write("spin.conf", "handler = \"spin\""))
        #expect(otherExtension.service == (try ServiceName("spin.conf")))
        let spelledOut = try ServiceDefinitionLoader.load(file: try dir.write("hash.toml", "service = \"hash\"\nhandler = \"sha256\""))
        #expect(spelledOut.service == (try ServiceName("hash")))
        try expectError("service = \"hash\"\nhandler = \"sha256\"", .serviceNotFileName, key: "service",
                        containing: "says \"hash\" but the file is named \"x.toml\"", name: "x.toml")
    }

    @Test func aDirectoryWithADefinitionUnderAnotherNameIsRefusedNamingBoth() throws {
        // What `starling up` loads: jobs/echo.toml must say service = "echo".
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("a.toml", "handler = \"echo\"")
        let echo = try dir.write("echo.toml", "service = \"resize\"\nhandler = \"echo\"")
        do {
            let all = try ServiceDefinitionLoader.loadAll(directory: dir.path)
            Issue.record("loaded \(all)")
        } catch {
            #expect(error.kind == .serviceNotFileName)
            #expect(error.description.hasPrefix("\(echo): service: says \"resize\" but the file is named \"echo.toml\""),
                    "\(error)")
            #expect(error.description.contains("resize.toml") && error.description.contains("service to \"echo\""), "\(error)")
        }
    }

    @Test func syntaxErrorsGiveTheLine() throws {
        let error = try loadError("handler = \"echo\"\nconcurrency = = 3\n")
        #expect(error?.kind == .syntax)
        #expect(error?.line == 2)
        #expect(error.map { $0.description.contains(":2:") && $0.description.contains("invalid TOML") } == true)
    }

    @Test func unknownKeysAreErrorsWithAHint() throws {
        try expectError("handler = \"echo\"\ntimout_ms = 5", .unknownKey, key: "timout_ms",
                        containing: "did you mean \"timeout_ms\"?")
        try expectError("handler = \"echo\"\n[limits]\nconcurrency = 2", .unknownKey, key: "limits",
                        containing: "known keys: service, handler, command")
    }

    @Test func wrongTypesNameTheKeyAndBothTypes() throws {
        try expectError("handler = \"echo\"\nconcurrency = \"4\"", .wrongType, key: "concurrency",
                        containing: "must be an integer, got a string")
        try expectError("handler = \"echo\"\nmax_workers = [1]", .wrongType, key: "max_workers",
                        containing: "must be an integer, got an array")
        try expectError("handler = \"echo\"\ntimeout_ms = 1.5", .wrongType, key: "timeout_ms",
                        containing: "floating-point")
        try expectError("handler = 3", .wrongType, key: "handler")
        try expectError("service = true\nhandler = \"echo\"", .wrongType, key: "service")
        try expectError("command = \"/bin/cat\"", .wrongType, key: "command", containing: "an array of strings")
        try expectError("command = [\"/bin/cat\", 1]", .wrongType, key: "command[1]")
    }

    @Test func outOfRangeValuesNameTheKey() throws {
        let cases: [(String, String)] = [
            ("concurrency = 0", "concurrency"), ("concurrency = 1025", "concurrency"),
            ("timeout_ms = 0", "timeout_ms"), ("timeout_ms = 86400001", "timeout_ms"),
            ("min_workers = -1", "min_workers"), ("min_workers = 9", "min_workers"),
            ("max_workers = 0", "max_workers"), ("min_workers = 1\nmax_workers = 2000", "max_workers"), ("min_workers = 0", "min_workers"),
            ("scale_up_backlog = 0", "scale_up_backlog"), ("scale_down_idle_ms = -5", "scale_down_idle_ms"),
            ("max_payload_bytes = -1", "max_payload_bytes"), ("max_payload_bytes = 67108865", "max_payload_bytes"),
            ("max_result_bytes = -1", "max_result_bytes"), ("max_result_bytes = 268435457", "max_result_bytes"),
        ]
        for (line, key) in cases {
            try expectError("handler = \"echo\"\n\(line)\n", .invalidValue, key: key, containing: "must be")
        }
    }

    @Test func exactlyOneOfHandlerAndCommand() throws {
        try expectError("concurrency = 2", .invalidValue, key: "handler", containing: "missing")
        try expectError("handler = \"echo\"\ncommand = [\"/bin/cat\"]", .invalidValue, key: "handler",
                        containing: "not both")
        try expectError("handler = \"ech\"", .invalidValue, key: "handler",
                        containing: "unknown built-in \"ech\"; use one of echo, sleep, sha256, spin")
        try expectError("command = []", .invalidValue, key: "command")
    }

    @Test func serviceNamesAreValidated() throws {
        try expectError("service = \"Bad Name\"\nhandler = \"echo\"", .invalidValue, key: "service",
                        containing: "\"Bad Name\"")
        try expectError("service = \"agent\"\nhandler = \"echo\"", .invalidValue, key: "service", containing: "reserved",
                        name: "agent.toml")
        try expectError("handler = \"echo\"", .invalidValue, key: "service", containing: "reserved", name: "agent.toml")
        let error = try loadError("handler = \"echo\"", name: "Upper.toml")
        #expect(error?.kind == .invalidValue)
        #expect(error?.key == "service")
    }

    @Test func commandProgramsMustBeExecutableFiles() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("tool.sh", "#!/bin/sh\ncat\n", permissions: 0o755)
        try dir.write("plain.sh", "#!/bin/sh\ncat\n", permissions: 0o644)
        let good = try dir.write("good.toml", "command = [\"tool.sh\", \"--flag\"]")
        let definition = try ServiceDefinitionLoader.load(file: good)
        #expect(definition.handler == .command(["\(dir.path)/tool.sh", "--flag"]), "relative path resolved")
        let absolute = try dir.write("abs.toml", "command = [\"/bin/cat\"]")
        #expect(try ServiceDefinitionLoader.load(file: absolute).handler == .command(["/bin/cat"]))

        for (program, fragment) in [("missing.sh", "does not exist"), ("plain.sh", "is not executable"),
                                    ("/tmp", "is not a regular file")] {
            let file = try dir.write("bad.toml", "command = [\"\(program)\"]")
            do {
                _ = try ServiceDefinitionLoader.load(file: file)
                Issue.record("\(program) accepted")
            } catch {
                #expect(error.kind == .badProgram)
                #expect(error.key == "command[0]")
                #expect(error.description.hasPrefix("\(file): command[0]: program \"\(program)\""), "\(error)")
                #expect(error.description.contains(fragment), "\(error)")
            }
        }
    }

    @Test func relativeProgramsResolveAgainstTheFilesFolderWhateverTheWorkingDirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: "\(dir.path)/jobs/handlers", withIntermediateDirectories: true)
        try dir.write("jobs/handlers/tool.sh", "#!/bin/sh\ncat\n", permissions: 0o755)
        try dir.write("jobs/tool.toml", "command = [\"handlers/tool.sh\"]")
        try dir.write("jobs/up.toml", "command = [\"../jobs/handlers/tool.sh\"]")
        let expected = ServiceDefinition.Handler.command(["\(dir.path)/jobs/handlers/tool.sh"])
        #expect(try ServiceDefinitionLoader.load(file: "\(dir.path)/jobs/tool.toml").handler == expected)
        #expect(try ServiceDefinitionLoader.load(file: "\(dir.path)/jobs/up.toml").handler
            == .command(["\(dir.path)/jobs/../jobs/handlers/tool.sh"]))
        // A jobs directory named relative to the working directory (never changed here: tests run
        // in parallel) gives the program under that directory, as an absolute path.
        let current = FileManager.default.currentDirectoryPath
        let upToRoot = current.split(separator: "/").map { _ in ".." }.joined(separator: "/")
        let relativeJobs = "\(upToRoot)\(dir.path)/jobs"
        let relative = try ServiceDefinitionLoader.load(service: try ServiceName("tool"), directory: relativeJobs)
        #expect(relative.handler == .command(["\(current)/\(relativeJobs)/handlers/tool.sh"]))
    }

    @Test func oversizedAndNonTextFilesAreRejectedBeforeParsing() throws {
        let big = "handler = \"echo\"\n" + String(repeating: "# padding padding padding padding\n", count: 2000)
        #expect(try loadError(big)?.kind == .tooLarge)
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        for bytes in [Array("handler = \"echo\"\n#\u{0}\n".utf8), [0x68, 0xFF, 0xFE]] {
            let file = try dir.write("bin.toml", bytes: bytes)
            #expect(throws: ServiceDefinitionError.self) { try ServiceDefinitionLoader.load(file: file) }
            do { _ = try ServiceDefinitionLoader.load(file: file) } catch { #expect(error.kind == .notText) }
        }
        let missing = "\(dir.path)/nope.toml"
        do {
            _ = try ServiceDefinitionLoader.load(file: missing)
        } catch {
            #expect(error.kind == .unreadable)
            #expect(error.description == "\(missing): does not exist")
        }
    }

    @Test func loadAllReadsEveryVisibleTOMLFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("a.toml", "handler = \"echo\"")
        try dir.write("b.toml", "handler = \"sleep\"")
        try dir.write("notes.txt", "not a definition")
        try dir.write(".hidden.toml", "this is not TOML at all")
        let all = try ServiceDefinitionLoader.loadAll(directory: dir.path)
        #expect(all.keys.sorted().map(\.value) == ["a", "b"])
        #expect(all[try ServiceName("b")]?.handler == .builtin(.sleep))

        try FileManager.default.createDirectory(atPath: "\(dir.path)/empty", withIntermediateDirectories: false)
        #expect(try ServiceDefinitionLoader.loadAll(directory: "\(dir.path)/empty").isEmpty)
        #expect(throws: ServiceDefinitionError.self) {
            try ServiceDefinitionLoader.loadAll(directory: "\(dir.path)/absent")
        }
    }

    @Test func loadServiceNamesTheMissingFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("echo.toml", "handler = \"echo\"")
        #expect(try ServiceDefinitionLoader.load(service: try ServiceName("echo"), directory: dir.path).handler
            == .builtin(.echo))
        let resize = try ServiceName("resize")
        do {
            _ = try ServiceDefinitionLoader.load(service: resize, directory: dir.path + "/")
            Issue.record("missing definition loaded")
        } catch {
            #expect(error.kind == .noDefinition)
            #expect(error.description
                == "no service definition for \"resize\": \(dir.path)/resize.toml does not exist")
        }
    }

    @Test func theShippedJobsDirectoryLoads() throws {
        let all = try ServiceDefinitionLoader.loadAll(directory: "\(repositoryRoot)/jobs")
        #expect(all.keys.sorted().map(\.value) == ["echo", "sha256", "sleep", "spin", "upper"])
        #expect(all[try ServiceName("echo")]?.handler == .builtin(.echo))
        #expect(all[try ServiceName("sleep")]?.handler == .builtin(.sleep))
        #expect(all[try ServiceName("sha256")]?.handler == .builtin(.sha256))
        #expect(all[try ServiceName("spin")]?.handler == .builtin(.spin))
        #expect(all[try ServiceName("upper")]?.handler == .command(["\(repositoryRoot)/jobs/handlers/upper.sh"]))
    }
}
