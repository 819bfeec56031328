import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A central server (gearmand, nats-server) on a free loopback port and W worker processes of
/// this bench, all started (and registered with `Children.shared`) by the bench; what the
/// `failure` scenario kills and starts again. The systems differ only in how their server starts
/// and what their workers are told (benchmarks/README.md).
final class ServerWithWorkers: Sendable {
    /// Starts the server on `port`, its log at `logPath`, and returns once it answers.
    typealias Launch = @Sendable (_ port: UInt16, _ logPath: String) throws -> pid_t

    /// How the server and its workers are named in logs and kill events ("gearmand", "gearman worker").
    let serverName: String
    let workerName: String
    let directory: String
    let port: UInt16
    let workerPIDs: [pid_t]
    private let launch: Launch

    private struct Server {
        var pid: pid_t
        /// How many times the server was started (names each one's log).
        var starts: Int
    }

    /// Changed by the kills (on the scenario's killer task).
    private let server: Mutex<Server>

    /// `name` from the environment variable `override`, PATH, or the system folders.
    static func findBinary(_ name: String, override: String, package: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[override] { return path }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for folder in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
            let candidate = folder + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw BenchError("""
            \(name) not found (PATH, /usr/sbin). Install it: sudo apt-get install \(package)
            (benchmarks/run does this), or set \(override) to its path
            """)
    }

    /// Starts the server (up to three free ports are tried), then `workers` processes of this
    /// bench with `workerArguments(port)`, each of which prints `readyLine` once it serves.
    init(
        serverName: String, workerName: String, workers: Int, readyLine: String,
        workerArguments: (UInt16) -> [String], launch: @escaping Launch
    ) throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-\(serverName)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: (any Error)?
        var chosen: (port: UInt16, pid: pid_t)?
        for _ in 0..<3 {
            let candidate = try LoopbackSocket.freePort()
            do {
                chosen = (candidate, try launch(candidate, directory + "/\(serverName)-0.log"))
                break
            } catch {
                lastError = error
            }
        }
        guard let chosen else { throw lastError ?? BenchError("\(serverName) did not start") }
        let me = Spawn.selfExecutable()
        var workerPIDs: [pid_t] = []
        for index in 0..<workers {
            let logPath = directory + "/\(workerName.replacingOccurrences(of: " ", with: "-"))-\(index).log"
            let started = try Spawn.start(binary: me, arguments: workerArguments(chosen.port), logPath: logPath, pipeStdout: true)
            workerPIDs.append(started.pid)
            let line = Spawn.readLine(started.stdoutFD!, timeoutMs: 10_000)
            close(started.stdoutFD!)
            guard line == readyLine else {
                throw BenchError("\(workerName) \(started.pid) not ready within 10 s (got '\(line)'); its log:\n"
                    + Spawn.logTail(logPath))
            }
        }
        self.serverName = serverName
        self.workerName = workerName
        self.directory = directory
        self.launch = launch
        port = chosen.port
        self.workerPIDs = workerPIDs
        server = Mutex(Server(pid: chosen.pid, starts: 1))
    }

    /// kill -9 of the server.
    func killServer() {
        Spawn.killNow(server.withLock { $0.pid })
    }

    /// Starts the server again on the same port (as a supervisor would).
    func restartServer() throws {
        try server.withLock { server in
            server.pid = try launch(port, directory + "/\(serverName)-\(server.starts).log")
            server.starts += 1
        }
    }

    /// kill -9 of worker `index`.
    func killWorker(_ index: Int) {
        Spawn.killNow(workerPIDs[index])
    }

    /// The `failure` scenario's kills. `workers`: kill -9 of a worker, then of another. `server`:
    /// kill -9 of the server, started again on the same port after `restartAfterMs` (if not 0).
    func killer(_ plan: FailurePlan?, start: UInt64) async -> [KillEvent] {
        guard let plan else { return [] }
        var events: [KillEvent] = []
        func happened(_ what: String) {
            events.append(KillEvent(atS: seconds(since: start), what: what))
            writeStderr("\nstarling-bench: \(what)\n")
        }
        await sleep(until: start + UInt64(plan.firstAtS * 1e9))
        switch plan.kind {
        case .workers:
            killWorker(0)
            happened("kill -9 of \(workerName) 1")
            await sleep(until: start + UInt64(plan.secondAtS * 1e9))
            killWorker(1)
            happened("kill -9 of \(workerName) 2")
        case .server:
            killServer()
            happened("kill -9 of \(serverName)")
            guard plan.restartAfterMs > 0 else { break }
            try? await Task.sleep(for: .milliseconds(plan.restartAfterMs))
            do {
                try restartServer()
                happened("\(serverName) started again (same port)")
            } catch {
                writeStderr("\nstarling-bench: could not start \(serverName) again: \(error)\n")
            }
        }
        return events
    }

    /// Waits until `isReady` (one attempt on a fresh connection) holds, at most 5 s; the process
    /// exiting first, or the time running out, is an error naming its log.
    static func awaitReady(
        _ pid: pid_t, name: String, port: UInt16, logs: [String], isReady: () throws(WireError) -> Bool
    ) throws -> pid_t {
        let deadline = monotonicNs() + 5_000_000_000
        var last = "no answer"
        while monotonicNs() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw BenchError("\(name) exited at once (status \(status)) on port \(port); its log:\n"
                    + logs.map { Spawn.logTail($0) }.joined())
            }
            do throws(WireError) {
                if try isReady() { return pid }
            } catch {
                last = "\(error)"
            }
            usleep(20_000)
        }
        Spawn.killNow(pid)
        throw BenchError("\(name) on port \(port) did not answer within 5 s (\(last)); its log:\n" + Spawn.logTail(logs[0]))
    }
}
