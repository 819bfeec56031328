import StarlingCore
import StarlingDemo

/// Members, reports and kills for the demo's tests.
enum DemoFixtures {
    static func id(_ n: UInt64) -> NodeID { NodeID(high: 0x0192_f3a4_5b6c_7d8e, low: 0x1000_0000_0000_0000 + n) }

    static let echo = try! ServiceName("echo")

    static func member(
        _ n: UInt64, _ status: MemberStatus, service: ServiceName = echo, epoch: UInt64 = 1, backlog: UInt32 = 0
    ) -> StatusReport.Entry {
        StatusReport.Entry(
            id: id(n), service: service, status: status, epoch: epoch, priority: 0, address: "127.0.0.1:\(40000 + n)",
            workload: Workload(running: 0, capacity: 64, backlog: backlog), lastHeardMs: 0)
    }

    static func report(_ members: [StatusReport.Entry], scaler: NodeID? = nil) -> StatusReport {
        StatusReport(selfID: members[0].id, members: members, scaler: scaler)
    }

    /// A kill of member `n` of echo, settled or not.
    static func kill(
        _ n: UInt64, primary: Bool, failover: Duration? = nil, detected: Duration? = nil, replaced: Duration? = nil
    ) -> DemoMonitor.Kill {
        DemoMonitor.Kill(
            what: primary ? "primary" : "standby", id: id(n), service: echo, pid: Int32(1000 + n),
            address: "127.0.0.1:\(40000 + n)", epoch: 1, at: .now, elapsedLabel: "8.1s", workersBefore: 3,
            idsBefore: [id(1), id(2), id(3)], failover: failover, detected: detected, replaced: replaced,
            waitsForFailover: primary)
    }
}
