import Foundation
import StarlingClient
import StarlingCore

#if canImport(Glibc)
import Glibc
#endif

/// Why the cluster under test could not be set up.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One `starling worker` process the bench started.
struct StartedWorker: Sendable {
    let pid: pid_t
    let id: NodeID
    /// `127.0.0.1:PORT`, its TCP (and UDP) port.
    let address: String
    /// Its stderr (the worker's log).
    let logPath: String
}

/// W workers of one service on loopback, started by the bench: the first on a free port, the
/// others joining it. Every process is registered with `Children.shared` before anything else.
struct Cluster: Sendable {
    let service: String
    let workers: [StartedWorker]
    /// The temporary folder with the jobs definition and the workers' logs.
    let directory: String

    /// The `starling` binary next to this executable (the same build folder).
    static func findBinary() throws -> String {
        if let override = ProcessInfo.processInfo.environment["STARLING_BINARY"] { return override }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = me.deletingLastPathComponent().appendingPathComponent("starling").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw BenchError("""
                no starling binary at \(candidate).
                Build it first, in the same configuration: swift build -c release
                (or set STARLING_BINARY to its path)
                """)
        }
        return candidate
    }

    /// Writes `<service>.toml` and starts `count` workers; returns once each has printed its
    /// `listening on` line.
    static func start(binary: String, service: String, definition: String, count: Int, intervalMs: Int,
                      startTimeoutMs: Int = 10_000) throws -> Cluster {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(definition.utf8).write(to: URL(fileURLWithPath: directory + "/\(service).toml"))

        var workers: [StartedWorker] = []
        for index in 0..<count {
            var arguments = ["worker", "--service", service, "--port", "0", "--host", "127.0.0.1",
                             "--interval", "\(intervalMs)", "--jobs", directory]
            if let seed = workers.first { arguments += ["--join", seed.address] }
            let logPath = directory + "/worker-\(index).log"
            workers.append(try spawnWorker(binary: binary, arguments: arguments, logPath: logPath,
                                           startTimeoutMs: startTimeoutMs))
        }
        return Cluster(service: service, workers: workers, directory: directory)
    }

    /// Starts one worker with stdout on a pipe (for its first line) and stderr in `logPath`.
    private static func spawnWorker(binary: String, arguments: [String], logPath: String,
                                    startTimeoutMs: Int) throws -> StartedWorker {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        let (readFD, writeFD) = (pipeFDs[0], pipeFDs[1])
        // Neither end leaks into the child except as its stdout (dup2 clears the flag there).
        _ = fcntl(readFD, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeFD, F_SETFD, FD_CLOEXEC)
        defer { close(readFD) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 1)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        // Its own process group: a Ctrl-C at the terminal reaches the bench only, which then
        // stops the workers itself, in order.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF
            | POSIX_SPAWN_SETSIGMASK))

        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, binary, &actions, &attributes, argv, environ)
        close(writeFD)
        guard spawned == 0 else {
            throw BenchError("cannot start \(binary): \(String(cString: strerror(spawned)))")
        }
        guard Children.shared.add(pid) else {
            Children.stop([pid], graceMs: 0)
            throw BenchError("stopping: worker not started")
        }

        let line = readLine(readFD, timeoutMs: startTimeoutMs)
        // "starling worker <id> listening on HOST:PORT"
        let words = line.split(separator: " ")
        guard words.count == 6, words[0] == "starling", words[1] == "worker", words[3] == "listening",
              words[4] == "on", let id = NodeID(words[2])
        else {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw BenchError("worker \(pid) did not report its address within \(startTimeoutMs) ms "
                + "(got '\(line)'); its log:\n\(log.suffix(2_000))")
        }
        return StartedWorker(pid: pid, id: id, address: String(words[5]), logPath: logPath)
    }

    /// The first line on `fd`, waiting at most `timeoutMs` in all.
    private static func readLine(_ fd: Int32, timeoutMs: Int) -> String {
        let deadline = monotonicNs() + UInt64(timeoutMs) * 1_000_000
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 512 {
            let now = monotonicNs()
            guard now < deadline else { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0, read(fd, &byte, 1) == 1, byte != 0x0A else { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Agreement

    /// What every worker agreed on.
    struct Agreement: Sendable {
        let primary: StartedWorker
        let epoch: UInt64
        /// Milliseconds from the first poll until agreement.
        let waitedMs: UInt64
    }

    /// Polls STATUS at every worker until each shows all W workers admitted (standby or
    /// primary) and one and the same primary; throws past `timeoutMs`.
    func waitForAgreement(timeoutMs: UInt64 = 20_000) async throws -> Agreement {
        var configuration = StarlingClient.Configuration()
        configuration.requestTimeoutMs = 1_000
        configuration.maxConnectAttempts = 1
        let clients = try workers.map { try StarlingClient(nodes: [$0.address], configuration: configuration) }
        let result: Result<Agreement, any Error>
        do {
            result = .success(try await poll(clients, timeoutMs: timeoutMs))
        } catch {
            result = .failure(error)
        }
        for client in clients { await client.close() }
        return try result.get()
    }

    private func poll(_ clients: [StarlingClient], timeoutMs: UInt64) async throws -> Agreement {
        let started = monotonicNs()
        let deadline = started + timeoutMs * 1_000_000
        var last = "no answer yet"
        while monotonicNs() < deadline {
            var primaries: Set<NodeID> = []
            var epochs: Set<UInt64> = []
            var settled = true
            for (worker, client) in zip(workers, clients) {
                let report: StatusReport
                do {
                    report = try StatusReport(json: try await client.status())
                } catch {
                    last = "worker \(worker.address): \(error)"
                    settled = false
                    break
                }
                let mine = report.members.filter { $0.service.value == service }
                let admitted = mine.filter { $0.status == .primary || $0.status == .standby }
                let claimed = mine.filter { $0.status == .primary }
                guard mine.count == workers.count, admitted.count == workers.count, claimed.count == 1 else {
                    last = "worker \(worker.address) sees \(mine.count) members: "
                        + mine.map { "\($0.id.short)=\($0.status)" }.joined(separator: " ")
                    settled = false
                    break
                }
                primaries.insert(claimed[0].id)
                epochs.insert(claimed[0].epoch)
            }
            if settled, primaries.count == 1, epochs.count == 1,
               let primary = workers.first(where: { $0.id == primaries.first }) {
                return Agreement(primary: primary, epoch: epochs.first!, waitedMs: (monotonicNs() - started) / 1_000_000)
            }
            if settled { last = "workers disagree: primaries \(primaries.map(\.short)), epochs \(epochs)" }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the \(workers.count) workers did not agree on one primary within \(timeoutMs) ms: \(last)")
    }
}
