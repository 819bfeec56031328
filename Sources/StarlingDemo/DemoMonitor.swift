import StarlingCore

/// Watches the cluster through `STATUS` polls: reports members joining and leaving, primaries and
/// the scaler changing, and measures how long a failover and a replacement take.
public final class DemoMonitor {
    /// A kill -9 the demo did, and what it is waiting to see.
    public struct Kill: Sendable {
        public var what: String
        public var id: NodeID
        public var service: ServiceName
        public var pid: Int32
        public var address: String
        public var epoch: UInt64
        public var at: ContinuousClock.Instant
        public var elapsedLabel: String
        /// Members of the service just before the kill; the kill is repaired when as many are back.
        public var workersBefore: Int
        /// Ids present before the kill: a replacement is an id not among them.
        public var idsBefore: Set<NodeID>
        /// From the kill until a new primary with a higher epoch was seen (primary kills only).
        public var failover: Duration?
        /// From the kill until the dead member left the record.
        public var detected: Duration?
        /// From the kill until the service had as many admitted workers as before.
        public var replaced: Duration?
        public var waitsForFailover: Bool

        public init(
            what: String, id: NodeID, service: ServiceName, pid: Int32, address: String, epoch: UInt64,
            at: ContinuousClock.Instant, elapsedLabel: String, workersBefore: Int, idsBefore: Set<NodeID>,
            failover: Duration? = nil, detected: Duration? = nil, replaced: Duration? = nil, waitsForFailover: Bool
        ) {
            self.what = what
            self.id = id
            self.service = service
            self.pid = pid
            self.address = address
            self.epoch = epoch
            self.at = at
            self.elapsedLabel = elapsedLabel
            self.workersBefore = workersBefore
            self.idsBefore = idsBefore
            self.failover = failover
            self.detected = detected
            self.replaced = replaced
            self.waitsForFailover = waitsForFailover
        }

        public var isSettled: Bool { (!waitsForFailover || failover != nil) && replaced != nil }
    }

    private let say: (String) -> Void
    public private(set) var report: StatusReport?
    public private(set) var members: [NodeID: StatusReport.Entry] = [:]
    public private(set) var scaler: NodeID?
    private var primaries: [ServiceName: (id: NodeID, epoch: UInt64)] = [:]
    /// Whether primary changes are told (after start-up, where every service gets its first).
    public var tellsPrimaries = false
    public private(set) var kills: [Kill] = []
    /// Highest worker count seen per service.
    public private(set) var peak: [ServiceName: Int] = [:]
    public private(set) var failedPolls = 0

    /// Each service's min_workers, to tell why a worker was started.
    private let minWorkers: [ServiceName: Int]

    public init(minWorkers: [ServiceName: Int], say: @escaping (String) -> Void) {
        self.minWorkers = minWorkers
        self.say = say
    }

    /// Why the scaler started the worker `entry`, as far as the record tells.
    private func why(joined entry: StatusReport.Entry, membersBefore: Int) -> String {
        guard entry.service != .agent, tellsPrimaries else { return "" }
        if kills.contains(where: { $0.service == entry.service && $0.replaced == nil }) {
            return ": the scaler replaces the killed one"
        }
        if membersBefore < minWorkers[entry.service] ?? 0 {
            return ": the scaler keeps min_workers = \(minWorkers[entry.service] ?? 0)"
        }
        guard let primary = primary(of: entry.service) else { return ": started by the scaler" }
        return ": the scaler adds one, \(entry.service) has \(primary.workload.backlog) jobs queued at its primary"
    }

    /// Members per service type, agents included.
    public var counts: [ServiceName: Int] {
        members.values.reduce(into: [:]) { $0[$1.service, default: 0] += 1 }
    }

    /// Admitted members (not joining) per service type.
    public var admittedCounts: [ServiceName: Int] {
        members.values.filter { $0.status != .joining }.reduce(into: [:]) { $0[$1.service, default: 0] += 1 }
    }

    /// The current primary of `service` as this record shows it: the one with the highest epoch
    /// (a dead primary stays in the record, still `primary`, until it is presumed dead).
    public func primary(of service: ServiceName) -> StatusReport.Entry? {
        members.values.filter { $0.service == service && $0.status == .primary }.max { $0.epoch < $1.epoch }
    }

    public func kill(_ kill: Kill) {
        kills.append(kill)
    }

    public var pendingKills: Bool { kills.contains { !$0.isSettled } }

    /// Takes in one poll's answer (nil: no agent answered).
    public func update(_ newReport: StatusReport?, now: ContinuousClock.Instant = .now) {
        guard let newReport else {
            failedPolls += 1
            return
        }
        report = newReport
        let fresh = Dictionary(newReport.members.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let before = counts
        for (id, entry) in fresh.sorted(by: { $0.key < $1.key }) where members[id] == nil {
            let kind = entry.service == .agent ? "agent" : "\(entry.service) worker"
            say("+ \(kind) \(id.short) joined (\(entry.address))" + why(joined: entry, membersBefore: before[entry.service] ?? 0))
        }
        for (id, entry) in members.sorted(by: { $0.key < $1.key }) where fresh[id] == nil {
            let kind = entry.service == .agent ? "agent" : "\(entry.service) worker"
            let why = kills.contains { $0.id == id } ? ": presumed dead after our kill -9" : ""
            say("- \(kind) \(id.short) left the record\(why)")
        }
        members = fresh
        for (service, count) in counts where service != .agent { peak[service] = max(peak[service] ?? 0, count) }

        if newReport.scaler != scaler, let next = newReport.scaler {
            say("agent \(next.short) is the scaler (the agents' primary): it starts and retires workers")
        }
        scaler = newReport.scaler

        for service in Set(members.values.map(\.service)) {
            guard let entry = primary(of: service) else { continue }
            let before = primaries[service]
            if before?.id != entry.id || before?.epoch != entry.epoch {
                primaries[service] = (entry.id, entry.epoch)
                if tellsPrimaries, service != .agent {
                    say("\(service) primary is now \(entry.id.short) (epoch \(entry.epoch))")
                }
            }
        }
        for index in kills.indices { settle(&kills[index], now: now) }
    }

    private func settle(_ kill: inout Kill, now: ContinuousClock.Instant) {
        let elapsed = now - kill.at
        if kill.detected == nil, members[kill.id] == nil {
            kill.detected = elapsed
        }
        if kill.waitsForFailover, kill.failover == nil, let entry = primary(of: kill.service),
           entry.id != kill.id, entry.epoch > kill.epoch
        {
            kill.failover = elapsed
            say("failover: \(kill.service) primary is \(entry.id.short) with epoch \(entry.epoch) > \(kill.epoch), "
                + "\(Self.ms(elapsed)) after the kill")
        }
        let admitted = members.values.filter { $0.service == kill.service && $0.status != .joining && $0.id != kill.id }
        if kill.replaced == nil, admitted.count >= kill.workersBefore,
           admitted.contains(where: { !kill.idsBefore.contains($0.id) })
        {
            kill.replaced = elapsed
            say("replaced: \(kill.service) is back to \(admitted.count) workers, \(Self.ms(elapsed)) after the kill")
        }
    }

    public static func ms(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return ms < 10_000 ? "\(ms) ms" : "\(ms / 1000).\(ms % 1000 / 100) s"
    }
}
