#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import StarlingCore
import StarlingUV

/// An agent's workers: `starling worker` processes it spawned on this host through libuv's process
/// API, each joining the heartbeat group at the agent's address. Loop-confined.
final class WorkerSupervisor {
    struct Launch: Sendable {
        /// The `starling` executable to run.
        var executable: String
        var jobsDirectory: String
        var host: NodeAddress.Host
        var intervalMs: Int64
        var logLevel: String
        /// Handed on by path (never the secrets themselves on a command line).
        var clusterKeyFile: String?
        var clientTokenFile: String?
        /// Handed on as flags: the agent's cap and idle timeouts apply to its workers too.
        var connections = ConnectionLimits()
    }

    private let loop: EventLoop
    private let launch: Launch
    private let seed: NodeAddress
    private let logger: Logger
    private var children: [Int32: (service: ServiceName, process: ChildProcess)] = [:]

    init(loop: EventLoop, launch: Launch, seed: NodeAddress, logger: Logger) {
        self.loop = loop
        self.launch = launch
        self.seed = seed
        self.logger = logger
    }

    /// The `--host` argument: the agent's own numeric address, without port or brackets.
    private var hostText: String {
        var text = NodeAddress(host: launch.host, port: 0).description
        text.removeLast(2)  // ":0"
        if text.hasPrefix("[") { text = String(text.dropFirst().dropLast()) }
        return text
    }

    /// Workers running now.
    var count: Int { children.count }

    /// Workers per service type.
    var services: [ServiceName: Int] {
        children.values.reduce(into: [:]) { $0[$1.service, default: 0] += 1 }
    }

    /// Starts a worker; throws when the process could not be started (logged here).
    func spawn(_ service: ServiceName, reason: String) throws {
        var arguments = [
            "worker", "--service", service.value, "--port", "0", "--host", hostText,
            "--join", seed.description, "--jobs", launch.jobsDirectory, "--interval", "\(launch.intervalMs)",
            "--log-level", launch.logLevel, "--parent-pid", "\(getpid())",
        ]
        if let path = launch.clusterKeyFile { arguments += ["--cluster-key-file", path] }
        if let path = launch.clientTokenFile { arguments += ["--client-token-file", path] }
        arguments += launch.connections.arguments
        do {
            var pid: Int32 = 0
            let process = try ChildProcess(
                loop: loop, executable: launch.executable, arguments: arguments,
                stdin: .ignore, stdout: .pipe, stderr: .inherit
            ) { [weak self] status in
                guard let self else { return }
                if let child = children.removeValue(forKey: pid) {
                    child.process.close()
                    let level: Logger.Level = status.code == 0 && status.signal == 0 ? .info : .notice
                    logger.log(level: level, "worker exited", metadata: [
                        "service": "\(child.service)", "pid": "\(pid)", "status": "\(status)"])
                }
            }
            pid = process.pid
            children[pid] = (service, process)
            // Its one stdout line says where it listens; a closed stdout would make that write fail.
            try? process.stdout?.startReading { [weak self] event in
                guard case .bytes(let bytes) = event else { return }
                self?.logger.info("\(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            logger.notice("spawned a worker", metadata: ["service": "\(service)", "pid": "\(pid)", "reason": "\(reason)"])
        } catch {
            logger.error("cannot spawn a worker of \(service): \(error)")
            throw error
        }
    }

    /// Asks every worker to drain and stop (SIGTERM).
    func stopAll() {
        signalAll(SIGTERM)
    }

    /// Passes SIGHUP on: each worker re-reads its key and token files.
    func hangUpAll() {
        signalAll(SIGHUP)
    }

    /// Stops every worker at once (SIGKILL), when draining took too long.
    func killAll() {
        signalAll(SIGKILL)
    }

    private func signalAll(_ signal: Int32) {
        for child in children.values where !child.process.hasExited {
            try? child.process.kill(signal)
        }
    }
}
