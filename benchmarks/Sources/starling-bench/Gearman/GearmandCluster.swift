import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// gearmand on a free loopback port and W `starling-bench gearman-worker` processes, all started
/// (and registered with `Children.shared`) by the bench.
final class GearmandCluster: Sendable {
    let binary: String
    let directory: String
    let port: UInt16
    let threads: Int
    let workerPIDs: [pid_t]

    private struct Server {
        var pid: pid_t
        /// How many times gearmand was started (names each one's log).
        var starts: Int
    }

    /// Changed by the kills (on the scenario's killer task).
    private let server: Mutex<Server>

    /// gearmand from GEARMAND_BINARY, PATH, or /usr/sbin.
    static func findBinary() throws -> String {
        if let override = ProcessInfo.processInfo.environment["GEARMAND_BINARY"] { return override }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for folder in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin"] {
            let candidate = folder + "/gearmand"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw BenchError("""
            gearmand not found (PATH, /usr/sbin). Install it: sudo apt-get install gearman-job-server
            (benchmarks/run does this), or set GEARMAND_BINARY to its path
            """)
    }

    /// Starts gearmand (up to three free ports are tried) and `workers` worker processes.
    init(workers: Int, function: GearmanJobFunction, connectionsPerWorker: Int, threads: Int) throws {
        let binary = try Self.findBinary()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-bench-gearmand-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: (any Error)?
        var chosen: (port: UInt16, pid: pid_t)?
        for _ in 0..<3 {
            let candidate = try LoopbackSocket.freePort()
            do {
                let pid = try Self.startServer(binary: binary, port: candidate, threads: threads,
                                               logPath: directory + "/gearmand-0.log", directory: directory)
                chosen = (candidate, pid)
                break
            } catch {
                lastError = error
            }
        }
        guard let chosen else { throw lastError ?? BenchError("gearmand did not start") }
        let port = chosen.port
        let me = Spawn.selfExecutable()
        var workerPIDs: [pid_t] = []
        for index in 0..<workers {
            let logPath = directory + "/gearman-worker-\(index).log"
            let started = try Spawn.start(
                binary: me,
                arguments: ["gearman-worker", "--port", "\(port)", "--function", function.rawValue,
                            "--connections", "\(connectionsPerWorker)"],
                logPath: logPath, pipeStdout: true)
            workerPIDs.append(started.pid)
            let line = Spawn.readLine(started.stdoutFD!, timeoutMs: 10_000)
            close(started.stdoutFD!)
            guard line == "gearman worker ready" else {
                throw BenchError("gearman worker \(started.pid) not ready within 10 s (got '\(line)'); its log:\n"
                    + Spawn.logTail(logPath))
            }
        }
        self.binary = binary
        self.directory = directory
        self.port = port
        self.threads = threads
        self.workerPIDs = workerPIDs
        server = Mutex(Server(pid: chosen.pid, starts: 1))
    }

    /// kill -9 of gearmand.
    func killServer() {
        Spawn.killNow(server.withLock { $0.pid })
    }

    /// Starts gearmand again on the same port (as a supervisor would).
    func restartServer() throws {
        try server.withLock { server in
            server.pid = try Self.startServer(binary: binary, port: port, threads: threads,
                                              logPath: directory + "/gearmand-\(server.starts).log", directory: directory)
            server.starts += 1
        }
    }

    /// kill -9 of worker `index`.
    func killWorker(_ index: Int) {
        Spawn.killNow(workerPIDs[index])
    }

    /// Starts gearmand in the foreground (no --daemon) and waits until it answers ECHO_REQ.
    private static func startServer(binary: String, port: UInt16, threads: Int, logPath: String,
                                    directory: String) throws -> pid_t {
        let arguments = ["--port", "\(port)", "--listen", "127.0.0.1", "--threads", "\(threads)",
                         "--log-file", logPath, "--verbose", "ERROR", "--pid-file", directory + "/gearmand.pid"]
        let started = try Spawn.start(binary: binary, arguments: arguments, logPath: logPath + ".stderr",
                                      pipeStdout: false)
        let deadline = monotonicNs() + 5_000_000_000
        var last = "no answer"
        while monotonicNs() < deadline {
            var status: Int32 = 0
            if waitpid(started.pid, &status, WNOHANG) == started.pid {
                throw BenchError("gearmand exited at once (status \(status)) on port \(port); its log:\n"
                    + Spawn.logTail(logPath) + Spawn.logTail(logPath + ".stderr"))
            }
            do throws(WireError) {
                let socket = try LoopbackSocket(port: port)
                var out: [UInt8] = []
                GearmanCodec.appendRequest(.echoReq, [Array("ready".utf8)[...]], to: &out)
                try socket.send(out)
                if try socket.receive(timeoutMs: 1_000)?.known == .echoRes { return started.pid }
            } catch {
                last = "\(error)"
            }
            usleep(20_000)
        }
        Spawn.killNow(started.pid)
        throw BenchError("gearmand on port \(port) did not answer within 5 s (\(last)); its log:\n" + Spawn.logTail(logPath))
    }
}
