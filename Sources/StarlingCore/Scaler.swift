/// The scaler's decisions (docs/HANDBOOK.md, "Scaling") as a pure state machine: the agents'
/// primary calls `tick` every interval with its whole record and carries out the directives.
///
/// Rules, per service type that has a definition (never `agent`, never an unknown service):
/// - **Bounds.** Workers are the members that are not leaving, plus spawns on their way, minus
///   retirements requested and not yet under way. Below `min_workers` (a worker died, or a cold
///   start) a replacement is spawned at once. Above `max_workers` one is retired at once.
/// - **Scale up** when the primary's backlog per executing worker stays above `scale_up_backlog`
///   for `scaleUpSustainMs`, up to `max_workers`, after `scaleUpCooldownMs` since the last scale event.
/// - **Scale down** one worker, the least-loaded standby, when for `scale_down_idle_ms` the backlog
///   was 0 and the running jobs fit in `scaleDownUtilization` of the slots left after removing it,
///   after `scaleDownCooldownMs` since the last scale event, with no spawn or retirement on its way.
/// - **Stagger**: at most `maxSpawnsInFlightPerService` spawns of a service on their way
///   (the next waits until the previous one appears in the record or is given up after
///   `spawnTimeoutMs`), and at most `maxSpawnsInFlight` in all, replacements first.
/// - **Placement**: the agent with the most headroom (capacity − running − spawns on their way
///   there), ties to the lower address; an agent whose spawn failed is tried last for a while.
///   With no headroom anywhere nothing is spawned and `reports[service].blocked` says why.
///
/// No clock reads, no randomness: the same calls give the same directives.
public struct Scaler: Sendable {
    /// The service types it keeps in bounds; `agent` is never scaled. Replaced by `replaceDefinitions`.
    public private(set) var definitions: [ServiceName: ServiceDefinition] {
        didSet { definitions[.agent] = nil }
    }
    public let config: ScalerConfig
    /// What it saw and decided per service type at the last tick.
    public private(set) var reports: [ServiceName: ScalerReport] = [:]
    private var states: [ServiceName: ScalerServiceState] = [:]

    public init(definitions: [ServiceName: ServiceDefinition], config: ScalerConfig = .init()) {
        self.definitions = definitions.filter { $0.key != .agent }
        self.config = config.clamped
    }

    /// Why services could not get the workers they need, by service; empty when nothing is blocked.
    public var blocked: [ServiceName: String] { reports.compactMapValues(\.blocked) }

    /// Spawns of `service` requested and not yet seen in the record.
    public func spawnsInFlight(for service: ServiceName) -> Int { states[service]?.spawns.count ?? 0 }

    /// Retirements of `service` requested and not yet under way.
    public func retirementsInFlight(for service: ServiceName) -> Int { states[service]?.retiring.count ?? 0 }

    // MARK: Inputs

    /// Called every interval by the scaler's process with the whole record (itself included) and
    /// the monotonic time: at most one directive per service type.
    public mutating func tick(nowMs: Int64, members: [Member]) -> [ScalingDirective] {
        let byService = Dictionary(grouping: members, by: \.service)
        let services = definitions.keys.sorted()
        let agentMembers = byService[.agent] ?? []
        let agentAddresses = Set(agentMembers.map(\.address))
        states = states.filter { definitions[$0.key] != nil }

        var demands: [ServiceName: ScalerDemand] = [:]
        for service in services {
            let present = (byService[service] ?? []).sorted { $0.id < $1.id }
            states[service, default: ScalerServiceState()].observe(present, agents: agentAddresses, nowMs: nowMs, config: config)
            demands[service] = ScalerDemand(present: present, retiring: states[service]!.retiring)
        }

        let inFlight = services.flatMap { states[$0]!.spawns.map(\.agent) }
        var agents = ScalerAgents(agents: agentMembers, spawnsInFlight: inFlight)
        var spawnBudget = config.maxSpawnsInFlight - inFlight.count
        // Replacements below min_workers go first when the spawn budget or the headroom is short.
        let ordered = services.filter { isBelowMin($0, demands[$0]!) } + services.filter { !isBelowMin($0, demands[$0]!) }

        reports = [:]
        var directives: [ScalingDirective] = []
        for service in ordered {
            if let directive = decide(service, demands[service]!, nowMs: nowMs, agents: &agents, spawnBudget: &spawnBudget) {
                directives.append(directive)
            }
        }
        return directives
    }

    /// The agent at `agent` could not start a worker of `service` (it said so): the spawn stops
    /// counting, the agent is tried last for that service for a while, and the next tick retries.
    public mutating func spawnFailed(service: ServiceName, agent: NodeAddress, nowMs: Int64) {
        states[service]?.spawnFailed(on: agent, nowMs: nowMs)
    }

    /// Takes a new set of definitions (an agent's SIGHUP reload), effective from the next tick:
    /// - an added service is kept in bounds from then on, as at a cold start (below `min_workers`,
    ///   a worker at once);
    /// - a changed one keeps what is on its way (spawns, retirements, demand timers) and is judged
    ///   by its new bounds and thresholds; its running workers are left as they are;
    /// - a removed one is forgotten: its workers are neither replaced, scaled nor retired (they are
    ///   left to the operator rather than drained on what may be a half-written directory).
    @discardableResult
    public mutating func replaceDefinitions(_ new: [ServiceName: ServiceDefinition]) -> ServiceDefinitionChanges {
        let new = new.filter { $0.key != .agent }
        let changes = ServiceDefinitionChanges(from: definitions, to: new)
        definitions = new
        for service in changes.removed {
            states[service] = nil
            reports[service] = nil
        }
        return changes
    }

    // MARK: Decisions

    private func workers(_ service: ServiceName, _ demand: ScalerDemand) -> Int {
        demand.active.count + (states[service]?.spawns.count ?? 0)
    }

    private func isBelowMin(_ service: ServiceName, _ demand: ScalerDemand) -> Bool {
        workers(service, demand) < definitions[service]!.minWorkers
    }

    private mutating func decide(
        _ service: ServiceName, _ demand: ScalerDemand, nowMs: Int64, agents: inout ScalerAgents, spawnBudget: inout Int
    ) -> ScalingDirective? {
        let definition = definitions[service]!
        var state = states[service]!
        defer { states[service] = state }
        let high = demand.isHigh(perWorker: definition.scaleUpBacklog)
        let low = demand.isLow(utilization: config.scaleDownUtilization)
        state.highSinceMs = high ? (state.highSinceMs ?? nowMs) : nil
        state.lowSinceMs = low ? (state.lowSinceMs ?? nowMs) : nil
        let workers = demand.active.count + state.spawns.count
        let sinceScale = state.lastScaleMs.map { nowMs - $0 } ?? .max

        var blocked: String?
        var directive: ScalingDirective?
        func spawn(_ reason: String) {
            guard state.spawns.count < config.maxSpawnsInFlightPerService, spawnBudget > 0 else { return }
            guard let agent = agents.take(avoiding: state.failedAgents) else {
                blocked = "needs a worker (\(reason)): \(agents.noHeadroomReason)"
                return
            }
            spawnBudget -= 1
            state.spawns.append(.init(agent: agent, requestedAtMs: nowMs))
            state.lastScaleMs = nowMs
            directive = .spawn(service: service, agent: agent, reason: reason)
        }
        func retire(_ worker: Member, _ reason: String) {
            state.retiring[worker.id] = nowMs
            state.lastScaleMs = nowMs
            directive = .retire(service: service, worker: worker.address, reason: reason)
        }

        if workers < definition.minWorkers {
            spawn("\(workers) of min_workers \(definition.minWorkers)")
        } else if demand.active.count > definition.maxWorkers {
            if state.retiring.isEmpty, let worker = demand.overflowCandidate {
                retire(worker, "\(demand.active.count) workers, above max_workers \(definition.maxWorkers)")
            }
        } else if high, let since = state.highSinceMs, nowMs - since >= config.scaleUpSustainMs {
            if workers >= definition.maxWorkers {
                blocked = "backlog \(demand.backlog) above \(definition.scaleUpBacklog) per executing worker, "
                    + "but at max_workers \(definition.maxWorkers)"
            } else if sinceScale >= config.scaleUpCooldownMs {
                spawn("backlog \(demand.backlog) above \(definition.scaleUpBacklog) per executing worker "
                    + "(\(demand.executors.count)) for \(nowMs - since) ms")
            }
        } else if low, let since = state.lowSinceMs, nowMs - since >= definition.scaleDownIdleMs,
                  workers > definition.minWorkers, state.spawns.isEmpty, state.retiring.isEmpty,
                  sinceScale >= config.scaleDownCooldownMs, let worker = demand.candidate {
            let percent = Int((config.scaleDownUtilization * 100).rounded())
            retire(worker, "idle for \(nowMs - since) ms: backlog 0, \(demand.running) running fit in \(percent)% "
                + "of the \(demand.capacityWithoutCandidate) slots left")
        }

        reports[service] = ScalerReport(
            service: service, workers: demand.active.count + state.spawns.count - (directive.isRetire ? 1 : 0),
            spawnsInFlight: state.spawns.count, retirementsInFlight: state.retiring.count,
            executors: demand.executors.count, executingCapacity: demand.executingCapacity, running: demand.running,
            backlog: demand.backlog, highSinceMs: state.highSinceMs, lowSinceMs: state.lowSinceMs, blocked: blocked)
        return directive
    }
}

private extension Optional where Wrapped == ScalingDirective {
    var isRetire: Bool {
        if case .retire? = self { return true }
        return false
    }
}
