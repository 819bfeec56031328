import Logging
import StarlingCore
import StarlingUV

/// What makes a process an agent (`starling up`): the workers it runs on its host, the headroom its
/// heartbeats advertise, and, while it is the agents' primary, the scaler that carries out
/// `Scaler`'s decisions. The `Worker` it lives in owns membership, jobs and draining. Loop-confined.
final class HostAgent {
    private let settings: AgentSettings
    private let supervisor: WorkerSupervisor
    private var scaler: Scaler
    private let links: PeerLinks
    /// This agent's own address: a spawn placed here needs no frame.
    private let address: NodeAddress
    private let logger: Logger
    private var refusals = RejectionLog(burst: 5)

    init(settings: AgentSettings, loop: EventLoop, host: NodeAddress.Host, intervalMs: Int64,
         address: NodeAddress, links: PeerLinks, logger: Logger) {
        self.settings = settings
        supervisor = WorkerSupervisor(
            loop: loop,
            launch: .init(
                executable: settings.executable, jobsDirectory: settings.jobsDirectory, host: host,
                intervalMs: intervalMs, logLevel: settings.workerLogLevel),
            seed: address, logger: logger)
        scaler = Scaler(definitions: settings.definitions)
        self.links = links
        self.address = address
        self.logger = logger
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
    func scale(record: [Member], nowMs: Int64) {
        for decision in scaler.tick(nowMs: nowMs, members: record) {
            switch decision {
            case .spawn(let service, let agent, let reason):
                logger.notice("scaler: start a worker", metadata: ["service": "\(service)", "agent": "\(agent)", "reason": "\(reason)"])
                if agent == address {
                    supervisor.spawn(service, reason: reason)
                } else {
                    links.send(.spawn(service: service, reason: reason), to: agent)
                }
            case .retire(let service, let worker, let reason):
                logger.notice("scaler: retire a worker", metadata: ["service": "\(service)", "worker": "\(worker)", "reason": "\(reason)"])
                links.send(.retire(reason: reason), to: worker)
            }
        }
        links.flush()
    }

    /// The scaler (here or at another agent) asks for a worker of `service` on this host. Refused,
    /// and logged, while draining, for a service with no definition here, or with no headroom; the
    /// scaler then gives the spawn up after its timeout and places it elsewhere.
    func spawnRequested(_ service: ServiceName, reason: String, by peer: NodeAddress, draining: Bool, nowMs: Int64) {
        let refusal: String? =
            if draining { "draining" }
            else if settings.definitions[service] == nil { "no definition of \(service) here" }
            else if supervisor.count >= settings.maxWorkers { "no headroom (\(supervisor.count) of \(settings.maxWorkers) workers)" }
            else { nil }
        if let refusal {
            refusals.record("spawn_refused", detail: "\(peer) asked for a \(service) worker: \(refusal)",
                            nowMs: nowMs, level: .notice, logger: logger)
            return
        }
        supervisor.spawn(service, reason: "asked by the scaler at \(peer): \(reason)")
    }

    /// Asks every worker it started to drain (SIGTERM).
    func stopWorkers() { supervisor.stopAll() }

    /// Stops every worker it started at once (SIGKILL), when draining took too long.
    func killWorkers() { supervisor.killAll() }
}
