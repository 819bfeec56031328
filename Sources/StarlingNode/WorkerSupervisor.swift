#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import StarlingCore
import StarlingUV

/// An agent's workers: `starling worker` processes it spawned on this host through libuv's process
/// API, each joining the heartbeat group at the agent's address. Loop-confined.
///
/// A worker's stderr passes through here, line by line, to the agent's own stderr, each line
/// naming the worker (`WorkerLogRelay`), and its last lines are kept: a worker that exits soon after its start (`StartBackoff`) is logged as a
/// warning with them, the spawn is reported failed (`onStartFailed`) if it never said where it
/// listens, and the next start of its service here waits, 0.5 s doubling to 30 s, instead of
/// following at once (docs/HANDBOOK.md, "start backoff").
final class WorkerSupervisor {
    struct Launch: Sendable {
        /// The `starling` executable to run.
        var executable: String
        var jobsDirectory: String
        var host: NodeAddress.Host
        var intervalMs: Int64
        var logLevel: String
        /// The agent's own `--log-format`: its workers write theirs the same way.
        var logFormat: LogFormat = .text
        /// Handed on by path (never the secrets themselves on a command line).
        var clusterKeyFile: String?
        var clientTokenFile: String?
        /// Handed on as flags: the agent's cap and idle timeouts apply to its workers too.
        var connections = ConnectionLimits()
    }

    /// One worker it started.
    private struct Child {
        let service: ServiceName
        let process: ChildProcess
        let startedMs: Int64
        /// The scaler that asked for it.
        let requester: NodeAddress
        var stderr = StderrTail()
        var relay: WorkerLogRelay
        /// Whether it wrote its `listening on` line.
        var listened = false
    }

    /// A start that waits for its service's backoff.
    private struct DelayedStart {
        let timer: StarlingUV.Timer
        let reason: String
        let requester: NodeAddress
    }

    private let loop: EventLoop
    private let launch: Launch
    private let seed: NodeAddress
    private let logger: Logger
    private var children: [Int32: Child] = [:]
    private var backoffs: [ServiceName: StartBackoff] = [:]
    private var delayed: [ServiceName: DelayedStart] = [:]
    /// Set once it stops its workers: their exits are then no failed starts.
    private var isStopping = false
    /// Asked again when a delayed start is due: why it may not start now (draining, no headroom).
    var admission: (ServiceName) -> String? = { _ in nil }
    /// A worker exited before it said where it listens (or a delayed start failed): the spawn
    /// `requester` asked for did not happen, with why.
    var onStartFailed: (ServiceName, NodeAddress, String) -> Void = { _, _, _ in }

    init(loop: EventLoop, launch: Launch, seed: NodeAddress, logger: Logger) {
        self.loop = loop
        self.launch = launch
        self.seed = seed
        self.logger = logger
    }

    private var nowMs: Int64 {
        loop.updateTime()
        return Int64(clamping: loop.now)
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

    /// Starts a worker for the scaler at `requester`, or, while the service backs off, schedules the
    /// start for the end of the wait (one per service: another request meanwhile joins it). Throws
    /// when the process could not be started (logged here).
    func spawn(_ service: ServiceName, reason: String, requester: NodeAddress) throws {
        let wait = backoffs[service]?.wait(nowMs: nowMs) ?? 0
        guard wait > 0 else {
            try start(service, reason: reason, requester: requester)
            return
        }
        guard delayed[service] == nil else { return }
        let timer = try StarlingUV.Timer(loop: loop)
        delayed[service] = DelayedStart(timer: timer, reason: reason, requester: requester)
        try timer.start(afterMs: UInt64(wait)) { [unowned self] in startDelayed(service) }
        logger.notice("worker start delayed: its last workers exited soon after starting", metadata: [
            "service": "\(service)", "wait_ms": "\(wait)", "failed_starts": "\(backoffs[service]?.failures ?? 0)"])
    }

    private func startDelayed(_ service: ServiceName) {
        guard let pending = delayed.removeValue(forKey: service) else { return }
        pending.timer.close()
        if let refusal = admission(service) {
            onStartFailed(service, pending.requester, refusal)
            return
        }
        do {
            try start(service, reason: pending.reason, requester: pending.requester)
        } catch {
            onStartFailed(service, pending.requester, "cannot start the process: \(error)")
        }
    }

    private func start(_ service: ServiceName, reason: String, requester: NodeAddress) throws {
        var arguments = [
            "worker", "--service", service.value, "--port", "0", "--host", hostText,
            "--join", seed.description, "--jobs", launch.jobsDirectory, "--interval", "\(launch.intervalMs)",
            "--log-level", launch.logLevel, "--log-format", launch.logFormat.rawValue, "--parent-pid", "\(getpid())",
        ]
        if let path = launch.clusterKeyFile { arguments += ["--cluster-key-file", path] }
        if let path = launch.clientTokenFile { arguments += ["--client-token-file", path] }
        arguments += launch.connections.arguments
        do {
            var pid: Int32 = 0
            let process = try ChildProcess(
                loop: loop, executable: launch.executable, arguments: arguments,
                stdin: .ignore, stdout: .pipe, stderr: .pipe
            ) { [weak self] status in
                self?.exited(pid, status: status)
            }
            pid = process.pid
            children[pid] = Child(
                service: service, process: process, startedMs: nowMs, requester: requester,
                relay: WorkerLogRelay(format: launch.logFormat, service: service, pid: pid))
            // Its one stdout line says where it listens; a closed stdout would make that write fail.
            try? process.stdout?.startReading { [weak self] event in
                guard let self, case .bytes(let bytes) = event else { return }
                let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                children[pid]?.listened = true
                children[pid]?.relay.listened(line)
                logger.info("\(line)")
            }
            try? process.stderr?.startReading { [weak self] event in
                guard let self, case .bytes(let bytes) = event, let complete = children[pid]?.stderr.append(bytes),
                      !complete.isEmpty, let relayed = children[pid]?.relay.relay(complete), !relayed.isEmpty else { return }
                // Its log goes on to the agent's stderr, whole lines at a time.
                JSONLogHandler.writeToStandardError(relayed)
            }
            logger.notice("spawned a worker", metadata: ["service": "\(service)", "pid": "\(pid)", "reason": "\(reason)"])
        } catch {
            logger.error("cannot spawn a worker of \(service): \(error)")
            throw error
        }
    }

    private func exited(_ pid: Int32, status: ChildProcess.ExitStatus) {
        guard let child = children.removeValue(forKey: pid) else { return }
        child.process.close()
        guard !isStopping else {
            logger.info("worker exited", metadata: [
                "service": "\(child.service)", "pid": "\(pid)", "worker": "\(child.relay.id.map(\.description) ?? "-")",
                "status": "\(status)"])
            return
        }
        let now = nowMs
        var backoff = backoffs[child.service] ?? StartBackoff()
        let wait = backoff.exited(startedMs: child.startedMs, nowMs: now)
        backoffs[child.service] = backoff
        guard let wait else {
            let level: Logger.Level = status.code == 0 && status.signal == 0 ? .info : .notice
            logger.log(level: level, "worker exited", metadata: [
                "service": "\(child.service)", "pid": "\(pid)", "worker": "\(child.relay.id.map(\.description) ?? "-")",
                "status": "\(status)"])
            return
        }
        let lines = child.stderr.recentLines
        let said = lines.isEmpty ? "was empty" : "lines: \(lines.joined(separator: " | "))"
        let message = "worker of \(child.service) exited \(now - child.startedMs) ms after its start (\(status)), "
            + "\(backoff.failures) in a row; the next start of \(child.service) here waits \(wait) ms; its last stderr \(said)"
        logger.warning(
            "\(message)",
            metadata: ["service": "\(child.service)", "pid": "\(pid)"])
        if !child.listened {
            onStartFailed(child.service, child.requester, "the worker exited \(now - child.startedMs) ms after its start (\(status))")
        }
    }

    /// Asks every worker to drain and stop (SIGTERM); delayed starts are dropped.
    func stopAll() {
        isStopping = true
        for pending in delayed.values { pending.timer.close() }
        delayed.removeAll()
        signalAll(SIGTERM)
    }

    /// The workers of `service` running now, by PID.
    func pids(of service: ServiceName) -> [Int32] {
        children.filter { $0.value.service == service }.map(\.key).sorted()
    }

    /// Passes SIGHUP on: each worker re-reads its key and token files.
    func hangUpAll() {
        signalAll(SIGHUP)
    }

    /// Stops every worker at once (SIGKILL), when draining took too long.
    func killAll() {
        isStopping = true
        for pending in delayed.values { pending.timer.close() }
        delayed.removeAll()
        signalAll(SIGKILL)
    }

    private func signalAll(_ signal: Int32) {
        for child in children.values where !child.process.hasExited {
            try? child.process.kill(signal)
        }
    }
}
