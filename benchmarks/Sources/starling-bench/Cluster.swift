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
            // --parent-pid: should the bench die without stopping them (kill -9), the workers drain and go.
            var arguments = ["worker", "--service", service, "--port", "0", "--host", "127.0.0.1",
                             "--interval", "\(intervalMs)", "--jobs", directory, "--parent-pid", "\(getpid())"]
            if let seed = workers.first { arguments += ["--join", seed.address] }
            let logPath = directory + "/worker-\(index).log"
            workers.append(try spawnWorker(binary: binary, arguments: arguments, logPath: logPath,
                                           startTimeoutMs: startTimeoutMs))
        }
        return Cluster(service: service, workers: workers, directory: directory)
    }

    /// Starts one worker with stdout on a pipe (for its first line) and stderr in `logPath`.
    static func spawnWorker(binary: String, arguments: [String], logPath: String,
                            startTimeoutMs: Int, kind: String = "worker") throws -> StartedWorker {
        let started = try Spawn.start(binary: binary, arguments: arguments, logPath: logPath, pipeStdout: true)
        let readFD = started.stdoutFD!
        defer { close(readFD) }
        let line = Spawn.readLine(readFD, timeoutMs: startTimeoutMs)
        // "starling worker <id> listening on HOST:PORT" (or "starling agent ...")
        let words = line.split(separator: " ")
        guard words.count == 6, words[0] == "starling", words[1] == kind, words[3] == "listening",
              words[4] == "on", let id = NodeID(words[2])
        else {
            throw BenchError("\(kind) \(started.pid) did not report its address within \(startTimeoutMs) ms "
                + "(got '\(line)'); its log:\n\(Spawn.logTail(logPath))")
        }
        return StartedWorker(pid: started.pid, id: id, address: String(words[5]), logPath: logPath)
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
