import Foundation

/// nats-server and W `starling-bench nats-worker` processes (`ServerWithWorkers`).
enum NATSServerCluster {
    static func start(workers: Int) throws -> ServerWithWorkers {
        let binary = try ServerWithWorkers.findBinary("nats-server", override: "NATS_SERVER_BINARY", package: "nats-server")
        return try ServerWithWorkers(
            serverName: "nats-server", workerName: "NATS worker", workers: workers, readyLine: "nats worker ready",
            workerArguments: { port in ["nats-worker", "--port", "\(port)"] },
            launch: { port, logPath in try startServer(binary: binary, port: port, logPath: logPath) })
    }

    /// Starts nats-server in the foreground, its log to stderr (a file), and waits until a
    /// connection completes the handshake (INFO, CONNECT, PING → PONG).
    private static func startServer(binary: String, port: UInt16, logPath: String) throws -> pid_t {
        let arguments = ["--addr", "127.0.0.1", "--port", "\(port)", "--pid", logPath + ".pid"]
        let started = try Spawn.start(binary: binary, arguments: arguments, logPath: logPath, pipeStdout: false)
        return try ServerWithWorkers.awaitReady(started.pid, name: "nats-server", port: port, logs: [logPath]) {
            () throws(WireError) -> Bool in
            let socket = try LoopbackSocket(port: port)
            try NATSHandshake.open(socket, name: "starling-bench readiness", subscriptions: [], timeoutMs: 1_000)
            return true
        }
    }
}
