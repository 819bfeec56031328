import StarlingCore
import StarlingDemo
import Testing

@Suite struct DemoMonitorTests {
    private typealias F = DemoFixtures
    private let agent = F.member(9, .primary, service: .agent)

    @Test func tellsJoinsTheScalerAndCountsMembers() {
        var said: [String] = []
        let monitor = DemoMonitor(minWorkers: [F.echo: 3]) { said.append($0) }
        monitor.update(F.report([agent, F.member(1, .primary), F.member(2, .standby), F.member(3, .joining)], scaler: agent.id))
        #expect(said.contains("+ echo worker \(F.id(1).short) joined (127.0.0.1:40001)"))
        #expect(said.contains("+ agent \(agent.id.short) joined (127.0.0.1:40009)"))
        #expect(said.contains("agent \(agent.id.short) is the scaler (the agents' primary): it starts and retires workers"))
        #expect(monitor.counts == [F.echo: 3, .agent: 1])
        #expect(monitor.admittedCounts == [F.echo: 2, .agent: 1])
        #expect(monitor.primary(of: F.echo)?.id == F.id(1))
        #expect(monitor.peak == [F.echo: 3])
        monitor.update(nil)
        #expect(monitor.failedPolls == 1)
    }

    @Test func measuresAFailoverAndAReplacement() {
        var said: [String] = []
        let monitor = DemoMonitor(minWorkers: [F.echo: 3]) { said.append($0) }
        monitor.update(F.report([agent, F.member(1, .primary), F.member(2, .standby), F.member(3, .standby)]))
        monitor.tellsPrimaries = true
        let killedAt = ContinuousClock.now
        var kill = F.kill(1, primary: true)
        kill.at = killedAt
        monitor.kill(kill)
        #expect(monitor.pendingKills)

        // The survivors elect 2 with a higher epoch; the dead primary has left the record.
        monitor.update(F.report([agent, F.member(2, .primary, epoch: 2), F.member(3, .standby)]), now: killedAt + .milliseconds(400))
        #expect(monitor.kills[0].failover == .milliseconds(400))
        #expect(monitor.kills[0].detected == .milliseconds(400))
        #expect(said.contains("failover: echo primary is \(F.id(2).short) with epoch 2 > 1, 400 ms after the kill"))
        #expect(said.contains("- echo worker \(F.id(1).short) left the record: presumed dead after our kill -9"))
        #expect(monitor.pendingKills, "not replaced yet")

        monitor.update(F.report([agent, F.member(2, .primary, epoch: 2), F.member(3, .standby), F.member(4, .standby)]),
                       now: killedAt + .milliseconds(800))
        #expect(said.contains("+ echo worker \(F.id(4).short) joined (127.0.0.1:40004): the scaler replaces the killed one"))
        #expect(said.contains("replaced: echo is back to 3 workers, 800 ms after the kill"))
        #expect(monitor.kills[0].isSettled)
        #expect(!monitor.pendingKills)
    }

    @Test func millisecondsAndSeconds() {
        #expect(DemoMonitor.ms(.milliseconds(392)) == "392 ms")
        #expect(DemoMonitor.ms(.milliseconds(12_345)) == "12.3 s")
    }
}
