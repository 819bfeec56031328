import Prometheus
import StarlingCore

/// What a process exposes at `GET /metrics` (docs/METRICS.md), rendered by swift-prometheus.
///
/// Events that happen here are counted as they happen (jobs submitted and answered at this entry
/// node, jobs this process's handler ran, scaler decisions, failovers); what the rest of the process already counts (rejections,
/// peer links) is read when scraped, through `CounterMirror`s, and gauges are set from the
/// record at each scrape (`observe`). Label values come from bounded sets: a service label is one
/// of at most `maxServiceLabels` names, any further name is counted as `_other`, so that clients
/// naming made-up services cannot grow the output without bound. Loop-confined.
final class NodeMetrics {
    /// Distinct `service` label values; past it a service is labelled `otherService`.
    static let maxServiceLabels = 256
    static let otherService = "_other"
    /// Submit to answer: from half a millisecond to a minute.
    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    private let registry = PrometheusCollectorRegistry()
    /// Every series of a service, made together (all zero at first) the first time the service is
    /// seen in the record or in a client's job, so that a scrape finds each family complete.
    private var services: [String: ServiceSeries] = [:]
    private var rejected: [String: CounterMirror] = [:]
    private var scalerDecisions: [String: Counter] = [:]
    /// Each service's primary, to see it change.
    private var failoverWatch = FailoverWatch()
    /// The record's version when every service in it last had its series.
    private var seriesVersion: UInt64?
    private let reconnects: CounterMirror
    private let bytesSent: CounterMirror
    private let bytesReceived: CounterMirror
    private let linksUp: Gauge

    init() {
        reconnects = CounterMirror(registry.makeCounter(descriptor: Family.peerLinkReconnectsTotal, labels: []))
        bytesSent = CounterMirror(registry.makeCounter(descriptor: Family.peerLinkBytesTotal, labels: [("direction", "sent")]))
        bytesReceived = CounterMirror(
            registry.makeCounter(descriptor: Family.peerLinkBytesTotal, labels: [("direction", "received")]))
        linksUp = registry.makeGauge(descriptor: Family.peerLinksUp, labels: [])
        for kind in ["spawn", "retire", "spawn_refused"] {
            scalerDecisions[kind] = registry.makeCounter(descriptor: Family.scalerDecisionsTotal, labels: [("kind", kind)])
        }
    }

    // MARK: Events

    /// A client's `SUBMIT` reached this entry node's job plane.
    func jobSubmitted(service: ServiceName) {
        series(of: service).submitted.increment()
    }

    /// This entry node answered a client's job, `duration` after its submit.
    func jobAnswered(service: ServiceName, outcome: JobAnswerOutcome, duration: Duration) {
        let series = series(of: service)
        series.answered[outcome]?.increment()
        series.duration.record(duration)
    }

    /// This process's handler ran a job (a `run` directive carried out, whoever's entry node it
    /// came from) and reported `outcome`.
    func jobRan(service: ServiceName, outcome: JobOutcome) {
        let series = series(of: service)
        switch outcome {
        case .succeeded: series.ranOK.increment()
        case .failed: series.ranFailed.increment()
        }
    }

    /// The scaler (this agent, while it is the agents' primary) decided (`spawn`, `retire`) or
    /// was refused (`spawn_refused`).
    func scalerDecided(_ kind: String) {
        scalerDecisions[kind]?.increment()
    }

    /// Follows the record each interval: a service whose primary changed to another member has
    /// failed over, as this process saw it. Returns those failovers (for the event timeline).
    func follow(_ membership: Membership, nowMs: Int64) -> [Failover] {
        let version = membership.recordVersion
        let failovers = failoverWatch.follow(membership, nowMs: nowMs)
        if version != seriesVersion {
            seriesVersion = version
            for service in failoverWatch.services { _ = series(of: service) }
        }
        for failover in failovers { series(of: failover.service).failovers.increment() }
        return failovers
    }

    private func series(of service: ServiceName) -> ServiceSeries {
        let label = serviceLabel(service)
        if let series = services[label] { return series }
        let series = ServiceSeries(label: label, registry: registry)
        services[label] = series
        return series
    }

    // MARK: Scrape

    /// What a scrape reads from the rest of the process.
    struct Sources {
        var members: [Member]
        var rejected: [String: UInt64]
        var openLinks: Int
        var reconnects: UInt64
        var bytesSent: UInt64
        var bytesReceived: UInt64
        /// This process's service and how many of its key shards it holds now.
        var keyShards: (service: ServiceName, held: Int)
    }

    /// Sets the gauges and mirrors from `sources`, then renders the text format 0.0.4.
    func render(_ sources: Sources) -> [UInt8] {
        observe(sources)
        return registry.emitToBuffer()
    }

    private func observe(_ sources: Sources) {
        var counts: [ServiceName: [MemberStatus: Int]] = [:]
        var primaryOf: [ServiceName: Member] = [:]
        for member in sources.members {
            counts[member.service, default: [:]][member.status, default: 0] += 1
            if member.status == .primary, member.epoch >= primaryOf[member.service]?.epoch ?? 0 {
                primaryOf[member.service] = member
            }
        }
        for (service, byStatus) in counts {
            let label = serviceLabel(service)
            for status in MemberStatus.allCases {
                registry.makeGauge(descriptor: Family.members, labels: [("service", label), ("status", status.description)])
                    .set(to: Double(byStatus[status] ?? 0))
            }
            let primary = primaryOf[service]
            registry.makeGauge(descriptor: Family.primaryEpoch, labels: [("service", label)]).set(to: Double(primary?.epoch ?? 0))
            registry.makeGauge(descriptor: Family.queueDepth, labels: [("service", label)])
                .set(to: Double(primary?.workload.backlog ?? 0))
        }
        for (reason, count) in sources.rejected {
            let mirror = rejected[reason]
                ?? CounterMirror(registry.makeCounter(descriptor: Family.rejectedTotal, labels: [("reason", reason)]))
            rejected[reason] = mirror
            mirror.follow(count)
        }
        registry.makeGauge(descriptor: Family.keyShardsHeld, labels: [("service", serviceLabel(sources.keyShards.service))])
            .set(to: Double(sources.keyShards.held))
        linksUp.set(to: Double(sources.openLinks))
        reconnects.follow(sources.reconnects)
        bytesSent.follow(sources.bytesSent)
        bytesReceived.follow(sources.bytesReceived)
    }

    /// The service's own name while fewer than `maxServiceLabels` are labelled, else `_other`.
    private func serviceLabel(_ service: ServiceName) -> String {
        services[service.value] != nil || services.count < Self.maxServiceLabels ? service.value : Self.otherService
    }
}

/// The series labelled with one service.
private final class ServiceSeries {
    let submitted: Counter
    let answered: [JobAnswerOutcome: Counter]
    let duration: DurationHistogram
    let failovers: Counter
    /// Jobs this process's handler ran, by outcome (`ok`, `fail`).
    let ranOK: Counter
    let ranFailed: Counter

    init(label: String, registry: PrometheusCollectorRegistry) {
        submitted = registry.makeCounter(descriptor: Family.jobsSubmittedTotal, labels: [("service", label)])
        var answered: [JobAnswerOutcome: Counter] = [:]
        for outcome in JobAnswerOutcome.allCases {
            answered[outcome] = registry.makeCounter(
                descriptor: Family.jobsAnsweredTotal, labels: [("service", label), ("outcome", outcome.rawValue)])
        }
        self.answered = answered
        duration = registry.makeDurationHistogram(
            descriptor: Family.jobDurationSeconds, labels: [("service", label)], buckets: NodeMetrics.durationBuckets)
        failovers = registry.makeCounter(descriptor: Family.failoversTotal, labels: [("service", label)])
        ranOK = registry.makeCounter(descriptor: Family.jobsRunTotal, labels: [("service", label), ("outcome", "ok")])
        ranFailed = registry.makeCounter(descriptor: Family.jobsRunTotal, labels: [("service", label), ("outcome", "fail")])
    }
}

/// How a job was answered, as `starling_jobs_answered_total` labels it.
enum JobAnswerOutcome: String, CaseIterable {
    case ok, fail, error
}

/// The families of docs/METRICS.md: each name and its help in one place.
private enum Family {
    static var peerLinkReconnectsTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "peer_link_reconnects", unitName: "total",
            helpText: "Peer links opened again to a peer this process had a link to before.")
    }
    static var peerLinkBytesTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "peer_link_bytes", unitName: "total",
            helpText: "Bytes on peer links, as written to and read from the sockets.")
    }
    static var peerLinksUp: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "peer_links_up", unitName: "",
            helpText: "Peer links this process has open to its peers.")
    }
    static var jobsSubmittedTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "jobs_submitted", unitName: "total",
            helpText: "Jobs submitted by clients at this entry node.")
    }
    static var jobsAnsweredTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "jobs_answered", unitName: "total",
            helpText: "Jobs answered to clients at this entry node, by outcome (ok, fail, error).")
    }
    static var jobsRunTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "jobs_run", unitName: "total",
            helpText: "Jobs this process's handler ran, whichever entry node they came from, by outcome (ok, fail).")
    }
    static var jobDurationSeconds: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "job_duration", unitName: "seconds",
            helpText: "Seconds from a job's submit to its answer, at its entry node.")
    }
    static var scalerDecisionsTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "scaler_decisions", unitName: "total",
            helpText: "Decisions of the scaler on this agent: spawn, retire, spawn_refused.")
    }
    static var failoversTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "failovers", unitName: "total",
            helpText: "Changes of a service's primary to another member, as this process's record saw them.")
    }
    static var members: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "members", unitName: "",
            helpText: "Members of each service and status in this process's record, itself included.")
    }
    static var primaryEpoch: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "primary_epoch", unitName: "",
            helpText: "The epoch of the service's primary in this record; 0 while it has none.")
    }
    static var queueDepth: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "queue_depth", unitName: "",
            helpText: "Jobs queued at the service's primary and not yet dispatched, as its heartbeats report.")
    }
    static var keyShardsHeld: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "key_shards_held", unitName: "",
            helpText: "Key shards of its service this process holds a lease on (of 64): keys of them submitted here run here.")
    }
    static var rejectedTotal: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "starling", metricName: "rejected", unitName: "total",
            helpText: "Input rejected by this process (datagrams, frames, connections, requests), by reason.")
    }
}
