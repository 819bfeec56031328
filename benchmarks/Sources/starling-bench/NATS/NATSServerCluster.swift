import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// nats-server on a free loopback port and W `starling-bench nats-worker` processes, all started
/// (and registered with `Children.shared`) by the bench.
final class NATSServerCluster: Sendable {
    let binary: String
    let directory: String
    let port: UInt16
    let workerPIDs: [pid_t]

    private struct Server {
        var pid: pid_t
        /// How many times nats-server was started (names each one's log).
        var starts: Int
    }

    /// Changed by the kills (on the scenario's killer task).
    private let server: Mutex<Server>

    /// nats-server from NATS_SERVER_BINARY, PATH, or /usr/sbin (where Debian's package puts it).
    static func findBinary() throws -> String {
        if let override = ProcessInfo.processInfo.environment["NATS_SERVER_BINARY"] { return override }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for folder in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
            let candidate = folder + "/nats-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw BenchError("""
            nats-server not found (PATH, /usr/sbin). Install it: sudo apt-get install nats-server
            (benchmarks/run does this), or set NATS_SERVER_BINARY to its path
            """)
    }

    /// Starts nats-server (up to three free ports are tried) and `workers` worker processes.
    init(workers: Int) throws {
        let binary = try Self.findBinary()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-nats-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: (any Error)?
        var chosen: (port: UInt16, pid: pid_t)?
        for _ in 0..<3 {
            let candidate = try LoopbackSocket.freePort()
            do {
                let pid = try Self.startServer(binary: binary, port: candidate, logPath: directory + "/nats-server-0.log",
                                               directory: directory)
                chosen = (candidate, pid)
                break
            } catch {
                lastError = error
            }
        }
        guard let chosen else { throw lastError ?? BenchError("nats-server did not start") }
        let me = Spawn.selfExecutable()
        var workerPIDs: [pid_t] = []
        for index in 0..<workers {
            let logPath = directory + "/nats-worker-\(index).log"
            let started = try Spawn.start(binary: me, arguments: ["nats-worker", "--port", "\(chosen.port)"],
                                          logPath: logPath, pipeStdout: true)
            workerPIDs.append(started.pid)
            let line = Spawn.readLine(started.stdoutFD!, timeoutMs: 10_000)
            close(started.stdoutFD!)
            guard line == "nats worker ready" else {
                throw BenchError("nats worker \(started.pid) not ready within 10 s (got '\(line)'); its log:\n"
                    + Spawn.logTail(logPath))
            }
        }
        self.binary = binary
        self.directory = directory
        port = chosen.port
        self.workerPIDs = workerPIDs
        server = Mutex(Server(pid: chosen.pid, starts: 1))
    }

    /// kill -9 of nats-server.
    func killServer() {
        Spawn.killNow(server.withLock { $0.pid })
    }

    /// Starts nats-server again on the same port (as a supervisor would).
    func restartServer() throws {
        try server.withLock { server in
            server.pid = try Self.startServer(binary: binary, port: port,
                                              logPath: directory + "/nats-server-\(server.starts).log", directory: directory)
            server.starts += 1
        }
    }

    /// kill -9 of worker `index`.
    func killWorker(_ index: Int) {
        Spawn.killNow(workerPIDs[index])
    }

    /// Starts nats-server in the foreground, its log to stderr (a file), and waits until a
    /// connection completes the handshake (INFO, CONNECT, PING → PONG).
    private static func startServer(binary: String, port: UInt16, logPath: String, directory: String) throws -> pid_t {
        let arguments = ["--addr", "127.0.0.1", "--port", "\(port)", "--pid", directory + "/nats-server.pid"]
        let started = try Spawn.start(binary: binary, arguments: arguments, logPath: logPath, pipeStdout: false)
        let deadline = monotonicNs() + 5_000_000_000
        var last = "no answer"
        while monotonicNs() < deadline {
            var status: Int32 = 0
            if waitpid(started.pid, &status, WNOHANG) == started.pid {
                throw BenchError("nats-server exited at once (status \(status)) on port \(port); its log:\n"
                    + Spawn.logTail(logPath))
            }
            do throws(WireError) {
                let socket = try LoopbackSocket(port: port)
                try NATSHandshake.open(socket, name: "starling-bench readiness", subscriptions: [], timeoutMs: 1_000)
                return started.pid
            } catch {
                last = "\(error)"
            }
            usleep(20_000)
        }
        Spawn.killNow(started.pid)
        throw BenchError("nats-server on port \(port) did not answer within 5 s (\(last)); its log:\n" + Spawn.logTail(logPath))
    }
}
