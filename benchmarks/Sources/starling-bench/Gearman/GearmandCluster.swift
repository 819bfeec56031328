import Foundation

/// gearmand and W `starling-bench gearman-worker` processes (`ServerWithWorkers`).
enum GearmandCluster {
    static func start(workers: Int, function: GearmanJobFunction, connectionsPerWorker: Int, threads: Int) throws
        -> ServerWithWorkers {
        let binary = try ServerWithWorkers.findBinary("gearmand", override: "GEARMAND_BINARY", package: "gearman-job-server")
        return try ServerWithWorkers(
            serverName: "gearmand", workerName: "gearman worker", workers: workers, readyLine: "gearman worker ready",
            workerArguments: { port in
                ["gearman-worker", "--port", "\(port)", "--function", function.rawValue,
                 "--connections", "\(connectionsPerWorker)"]
            },
            launch: { port, logPath in try startServer(binary: binary, port: port, threads: threads, logPath: logPath) })
    }

    /// Starts gearmand in the foreground (no --daemon) and waits until it answers ECHO_REQ.
    private static func startServer(binary: String, port: UInt16, threads: Int, logPath: String) throws -> pid_t {
        let arguments = ["--port", "\(port)", "--listen", "127.0.0.1", "--threads", "\(threads)",
                         "--log-file", logPath, "--verbose", "ERROR", "--pid-file", logPath + ".pid"]
        let started = try Spawn.start(binary: binary, arguments: arguments, logPath: logPath + ".stderr",
                                      pipeStdout: false)
        return try ServerWithWorkers.awaitReady(
            started.pid, name: "gearmand", port: port, logs: [logPath, logPath + ".stderr"]
        ) { () throws(WireError) -> Bool in
            let socket = try LoopbackSocket(port: port)
            var out: [UInt8] = []
            GearmanCodec.appendRequest(.echoReq, [Array("ready".utf8)[...]], to: &out)
            try socket.send(out)
            return try socket.receive(timeoutMs: 1_000)?.known == .echoRes
        }
    }
}
