import Logging
import StarlingCore
import StarlingUV

/// What makes a process an agent (`starling up`): the workers it runs on its host, the headroom its
/// heartbeats advertise, and, while it is the agents' primary, the scaler that carries out
/// `Scaler`'s decisions. The `Worker` it lives in owns membership, jobs and draining. Loop-confined.
final class HostAgent {
    private let settings: AgentSettings
    /// The service types it may start workers of: `settings.definitions` until a SIGHUP reloads them.
    private var definitions: [ServiceName: ServiceDefinition]
    private let supervisor: WorkerSupervisor
    private var scaler: Scaler
    private let links: PeerLinks
    /// This agent's own address: a spawn placed here needs no frame.
    private let address: NodeAddress
    private let logger: Logger
    private let loop: EventLoop
    private var refusals = RejectionLog(burst: 5)
    /// Each decision of its scaler: its kind (`spawn`, `retire`, `spawn_refused`) for the metrics,
    /// and the service and what and why in words for the dashboard's event timeline.
    var onScalerDecision: (_ kind: String, _ service: ServiceName, _ detail: String) -> Void = { _, _, _ in }

    init(settings: AgentSettings, loop: EventLoop, member: WorkerSettings,
         address: NodeAddress, links: PeerLinks, logger: Logger) {
        self.settings = settings
        supervisor = WorkerSupervisor(
            loop: loop,
            launch: .init(
                executable: settings.executable, jobsDirectory: settings.jobsDirectory, host: member.host,
                intervalMs: member.intervalMs, logLevel: settings.workerLogLevel, logFormat: settings.logFormat,
                clusterKeyFile: member.clusterKeyFile, clientTokenFile: member.clientTokenFile, connections: member.connections),
            seed: address, logger: logger)
        definitions = settings.definitions
        scaler = Scaler(definitions: settings.definitions)
        self.links = links
        self.address = address
        self.logger = logger
        self.loop = loop
        supervisor.onStartFailed = { [unowned self] service, requester, reason in
            startFailed(service, reason: reason, requester: requester)
        }
        // A drain drops delayed starts (`stopWorkers`), so one that is due is never draining.
        supervisor.admission = { [unowned self] service in
            SpawnAdmission.refusal(
                of: service, isDraining: false, definitions: definitions,
                workers: supervisor.count, maxWorkers: settings.maxWorkers)
        }
    }

    /// SIGHUP: reads the jobs directory again (docs/HANDBOOK.md, "definitions reload"). New services
    /// get their workers from the scaler's next tick and changed ones are judged by their new
    /// bounds; running workers are left alone (a worker reads its file when it starts, so a changed
    /// definition reaches the workers started from now on). A removed service's workers keep
    /// running unmanaged, logged with their PIDs: draining them on what may be a half-written
    /// directory could stop a service cluster-wide. A directory that fails to load, or holds no
    /// definition, keeps the previous set and logs why, naming the file.
    func reloadDefinitions() {
        let loaded: [ServiceName: ServiceDefinition]
        do {
            loaded = try ServiceDefinitionLoader.loadAll(directory: settings.jobsDirectory)
        } catch {
            logger.error("SIGHUP: kept the previous service definitions: \(error)", metadata: ["file": "\(error.file)"])
            return
        }
        guard !loaded.isEmpty else {
            logger.error(
                "SIGHUP: kept the previous service definitions: \(settings.jobsDirectory) holds no service definitions (*.toml)",
                metadata: ["file": "\(settings.jobsDirectory)"])
            return
        }
        definitions = loaded
        let changes = scaler.replaceDefinitions(loaded)
        func names(_ services: [ServiceName]) -> Logger.Metadata.Value { "\(services.map(\.value).joined(separator: ","))" }
        logger.notice(changes.isEmpty ? "SIGHUP: service definitions unchanged" : "SIGHUP: service definitions reloaded", metadata: [
            "services": "\(loaded.count)", "added": names(changes.added), "changed": names(changes.changed),
            "removed": names(changes.removed)])
        for service in changes.removed {
            let pids = supervisor.pids(of: service)
            logger.warning(
                "SIGHUP: \(service) has no definition any more: its \(pids.count) workers here keep running, no longer replaced or scaled; stop them with SIGTERM, or restore its file",
                metadata: ["service": "\(service)", "pids": "\(pids.map(String.init).joined(separator: ","))"])
        }
    }

    /// SIGHUP reached the agent: its workers re-read their secrets too.
    func forwardHangUp() {
        supervisor.hangUpAll()
    }

    /// Workers it runs now.
    var workerCount: Int { supervisor.count }

    /// What its heartbeats carry: workers running here against the host's limit (none while draining).
    func workload(draining: Bool) -> Workload {
        Workload(
            running: UInt32(clamping: supervisor.count),
            capacity: draining ? 0 : UInt32(clamping: settings.maxWorkers), backlog: 0)
    }

    /// Called every interval while this agent is the agents' primary, with the whole record.
    func scale(record: [Member], draining: Bool, nowMs: Int64) {
        for decision in scaler.tick(nowMs: nowMs, members: record) {
            switch decision {
            case .spawn(let service, let agent, let reason):
                onScalerDecision("spawn", service, "start a worker on the agent at \(agent): \(reason)")
                logger.notice("scaler: start a worker", metadata: ["service": "\(service)", "agent": "\(agent)", "reason": "\(reason)"])
                if agent == address {
                    if let refusal = startWorker(service, reason: reason, draining: draining, requester: address) {
                        spawnRefused(service, reason: refusal, by: address, nowMs: nowMs)
                    }
                } else {
                    links.send(.spawn(service: service, reason: reason), to: agent)
                }
            case .retire(let service, let worker, let reason):
                onScalerDecision("retire", service, "retire the worker at \(worker): \(reason)")
                logger.notice("scaler: retire a worker", metadata: ["service": "\(service)", "worker": "\(worker)", "reason": "\(reason)"])
                links.send(.retire(reason: reason), to: worker)
            }
        }
        links.flush()
    }

    /// The scaler at `peer` asks for a worker of `service` on this host. A refusal
    /// (`SpawnAdmission`) is logged and sent back, so the scaler places the worker elsewhere.
    func spawnRequested(_ service: ServiceName, reason: String, by peer: NodeAddress, draining: Bool, nowMs: Int64) {
        guard let refusal = startWorker(
            service, reason: "asked by the scaler at \(peer): \(reason)", draining: draining, requester: peer) else { return }
        refusals.record("spawn_refused", detail: "\(peer) asked for a \(service) worker: \(refusal)",
                        nowMs: nowMs, level: .notice, logger: logger)
        links.send(.spawnRefused(service: service, reason: refusal), to: peer)
        links.flush()
    }

    /// An agent (this one or another) did not start a worker this agent's scaler asked for.
    func spawnRefused(_ service: ServiceName, reason: String, by agent: NodeAddress, nowMs: Int64) {
        onScalerDecision("spawn_refused", service, "the agent at \(agent) did not start a worker: \(reason)")
        logger.notice("scaler: spawn refused", metadata: ["service": "\(service)", "agent": "\(agent)", "reason": "\(reason)"])
        scaler.spawnFailed(service: service, agent: agent, nowMs: nowMs)
    }

    /// Starts a worker unless `SpawnAdmission` refuses; returns the refusal, or why it failed to start.
    private func startWorker(_ service: ServiceName, reason: String, draining: Bool, requester: NodeAddress) -> String? {
        if let refusal = SpawnAdmission.refusal(
            of: service, isDraining: draining, definitions: definitions,
            workers: supervisor.count, maxWorkers: settings.maxWorkers) {
            return refusal
        }
        do {
            try supervisor.spawn(service, reason: reason, requester: requester)
            return nil
        } catch {
            return "cannot start the process: \(error)"
        }
    }

    /// A worker started for the scaler at `requester` never came up: it is told, as for a refused
    /// spawn, so it need not wait for its spawn timeout and may place the worker elsewhere.
    private func startFailed(_ service: ServiceName, reason: String, requester: NodeAddress) {
        if requester == address {
            spawnRefused(service, reason: reason, by: address, nowMs: Int64(clamping: loop.now))
        } else {
            links.send(.spawnRefused(service: service, reason: reason), to: requester)
            links.flush()
        }
    }

    /// Asks every worker it started to drain (SIGTERM).
    func stopWorkers() { supervisor.stopAll() }

    /// Stops every worker it started at once (SIGKILL), when draining took too long.
    func killWorkers() { supervisor.killAll() }
}
