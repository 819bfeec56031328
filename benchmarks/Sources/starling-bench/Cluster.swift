import Foundation
import StarlingClient
import StarlingCore
import StarlingTestSupport

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
    /// The port of its `--http` endpoints (/metrics), when started with `--http`.
    var httpPort: UInt16? = nil
}

/// W workers of one service on loopback, started by the bench: the first on a free port, the
/// others joining it. Every process is registered with `Children.shared` before anything else.
struct Cluster: Sendable {
    let service: String
    let workers: [StartedWorker]
    /// The temporary folder with the jobs definition and the workers' logs.
    let directory: String

    /// The `starling` binary next to this executable (the same build folder), or `STARLING_BINARY`.
    static func findBinary() throws -> String {
        do {
            return try StarlingBinary.locate()
        } catch {
            throw BenchError(error.description)
        }
    }

    /// Writes `<service>.toml` and starts `count` workers, each with `extraArguments` (e.g.
    /// `--http 127.0.0.1:0`); returns once each has printed its `listening on` line.
    static func start(binary: String, service: String, definition: String, count: Int, intervalMs: Int,
                      clusterKey: Bool = false, extraArguments: [String] = [],
                      startTimeoutMs: Int = 10_000) throws -> Cluster {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(definition.utf8).write(to: URL(fileURLWithPath: directory + "/\(service).toml"))
        var keyArguments: [String] = []
        if clusterKey {
            // A fresh key from `starling keygen`, in a file only the bench's user may read, as the
            // workers demand.
            let path = directory + "/cluster.key"
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let file = FileHandle(forWritingAtPath: path)
            else { throw BenchError("cannot create the cluster key file \(path)") }
            let keygen = Process()
            keygen.executableURL = URL(fileURLWithPath: binary)
            keygen.arguments = ["keygen"]
            keygen.standardOutput = file
            try keygen.run()
            keygen.waitUntilExit()
            try file.close()
            guard keygen.terminationStatus == 0 else { throw BenchError("`starling keygen` failed (\(keygen.terminationStatus))") }
            keyArguments = ["--cluster-key-file", path]
        }

        var workers: [StartedWorker] = []
        for index in 0..<count {
            // --parent-pid: should the bench die without stopping them (kill -9), the workers drain and go.
            var arguments = ["worker", "--service", service, "--port", "0", "--host", "127.0.0.1",
                             "--interval", "\(intervalMs)", "--jobs", directory, "--parent-pid", "\(getpid())"]
                + keyArguments + extraArguments
            if let seed = workers.first { arguments += ["--join", seed.address] }
            let logPath = directory + "/worker-\(index).log"
            workers.append(try spawnWorker(binary: binary, arguments: arguments, logPath: logPath,
                                           startTimeoutMs: startTimeoutMs))
        }
        return Cluster(service: service, workers: workers, directory: directory)
    }

    /// Starts one worker (or, with `kind` "agent", an agent) in a process group of its own, with
    /// stdout on a pipe (for its `listening on` line) and stderr in `logPath`; it is registered with
    /// `Children.shared` before anything else can fail.
    static func spawnWorker(binary: String, arguments: [String], logPath: String,
                            startTimeoutMs: Int, kind: String = "worker") throws -> StartedWorker {
        guard let lineKind = ListeningLine.Kind(rawValue: kind) else { throw BenchError("no such process kind: \(kind)") }
        let started: StarlingProcess
        do {
            started = try StarlingProcess(executable: binary, arguments: arguments, logPath: logPath, ownProcessGroup: true)
        } catch {
            throw BenchError(error.description)
        }
        guard Children.shared.add(started.pid) else {
            Children.stop([started.pid], graceMs: 0)
            throw BenchError("stopping: \(binary) not started")
        }
        guard let line = started.waitUntilListening(as: lineKind, timeout: .milliseconds(startTimeoutMs)) else {
            throw BenchError("\(kind) \(started.pid) did not report its address within \(startTimeoutMs) ms "
                + "(last line: '\(started.lastOtherLine)'); its log:\n\(Spawn.logTail(logPath))")
        }
        return StartedWorker(pid: started.pid, id: line.id, address: line.address.description, logPath: logPath,
                             httpPort: line.httpAddress?.port)
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
            result = .success(try await awaitAgreement(clients, timeoutMs: timeoutMs))
        } catch {
            result = .failure(error)
        }
        for client in clients { await client.close() }
        return try result.get()
    }

    private func awaitAgreement(_ clients: [StarlingClient], timeoutMs: UInt64) async throws -> Agreement {
        let started = ContinuousClock.now
        var last = "no answer yet"
        let agreement = await pollAsync(within: .milliseconds(timeoutMs), every: .milliseconds(50)) { () async -> Agreement? in
            var primaries: Set<NodeID> = []
            var epochs: Set<UInt64> = []
            for (worker, client) in zip(workers, clients) {
                let report: StatusReport
                do {
                    report = try StatusReport(json: try await client.status())
                } catch {
                    last = "worker \(worker.address): \(error)"
                    return nil
                }
                let mine = report.members.filter { $0.service.value == service }
                let admitted = mine.filter { $0.status == .primary || $0.status == .standby }
                let claimed = mine.filter { $0.status == .primary }
                guard mine.count == workers.count, admitted.count == workers.count, claimed.count == 1 else {
                    last = "worker \(worker.address) sees \(mine.count) members: "
                        + mine.map { "\($0.id.short)=\($0.status)" }.joined(separator: " ")
                    return nil
                }
                primaries.insert(claimed[0].id)
                epochs.insert(claimed[0].epoch)
            }
            guard primaries.count == 1, epochs.count == 1, let primary = workers.first(where: { $0.id == primaries.first })
            else {
                last = "workers disagree: primaries \(primaries.map(\.short)), epochs \(epochs)"
                return nil
            }
            let waited = ContinuousClock.now - started
            return Agreement(primary: primary, epoch: epochs.first!, waitedMs: UInt64(waited / .milliseconds(1)))
        }
        guard let agreement else {
            throw BenchError("the \(workers.count) workers did not agree on one primary within \(timeoutMs) ms: \(last)")
        }
        return agreement
    }
}
