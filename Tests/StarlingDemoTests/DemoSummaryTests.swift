import StarlingCore
import StarlingDemo
import Testing

@Suite struct DemoSummaryTests {
    private func tally(ok: Int, wrong: Int = 0, unanswered: Int = 0) -> DemoTally {
        let tally = DemoTally()
        for n in 0..<(ok + wrong + unanswered) {
            tally.submitted("echo")
            let latency = Double(n + 1)
            if n < ok {
                tally.record("echo", latencyMs: latency) { $0.ok += 1 }
            } else if n < ok + wrong {
                tally.record("echo", latencyMs: latency) { $0.wrong += 1 }
            } else {
                tally.record("echo", latencyMs: latency) { $0.unanswered += 1 }
            }
        }
        return tally
    }

    private let settledKills = [
        DemoFixtures.kill(1, primary: true, failover: .milliseconds(392), detected: .milliseconds(350), replaced: .milliseconds(764)),
        DemoFixtures.kill(2, primary: false, detected: .milliseconds(360), replaced: .milliseconds(1384)),
    ]

    private func summary(_ tally: DemoTally, kills: [DemoMonitor.Kill]? = nil, problems: [String] = []) -> DemoSummary {
        DemoSummary(
            tally: tally, kills: kills ?? settledKills, snapshots: [("ready", [DemoFixtures.echo: 3, .agent: 2])],
            peak: [DemoFixtures.echo: 4], services: [DemoFixtures.echo], problems: problems)
    }

    @Test func passesWhenEveryJobIsAnsweredOKAndBothKillsAreRepaired() {
        let summary = summary(tally(ok: 10))
        #expect(summary.passed)
        #expect(summary.verdict == "10 jobs submitted, 10 answered OK, lost 0; failover in 392 ms")
    }

    @Test func aWrongResultFails() {
        let summary = summary(tally(ok: 9, wrong: 1))
        #expect(!summary.passed)
        #expect(summary.verdict == "10 jobs submitted, 9 answered OK, lost 0; 0 FAIL, 0 ERR, 1 wrong results; failover in 392 ms")
    }

    @Test func aJobWithoutAnAnswerIsLost() {
        let summary = summary(tally(ok: 9, unanswered: 1))
        #expect(summary.total.lost == 1)
        #expect(!summary.passed)
    }

    @Test func aKillNotRepairedOrAProblemFails() {
        let unrepaired = [settledKills[0], DemoFixtures.kill(2, primary: false, detected: .milliseconds(360))]
        #expect(!summary(tally(ok: 10), kills: unrepaired).passed)
        #expect(!summary(tally(ok: 10), kills: [settledKills[0]]).passed)
        let noFailover = [DemoFixtures.kill(1, primary: true, replaced: .milliseconds(764)), settledKills[1]]
        #expect(!summary(tally(ok: 10), kills: noFailover).passed)
        #expect(summary(tally(ok: 10), kills: noFailover).verdict.hasSuffix("; no failover seen"))
        let troubled = summary(tally(ok: 10), problems: ["the echo standby was not killed"])
        #expect(!troubled.passed)
        #expect(troubled.verdict.hasSuffix("; the echo standby was not killed"))
        #expect(!summary(DemoTally()).passed, "no job at all is no pass")
    }

    @Test func rendersTheJobTableTheKillsAndTheWorkerCounts() {
        let lines = summary(tally(ok: 100)).render().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "  jobs   submitted  answered   OK  FAIL  ERR  wrong  lost  retried  median     p99     max")
        #expect(lines[1] == "  echo         100       100  100     0    0      0     0        0   51 ms  100 ms  100 ms")
        #expect(lines[2] == "  total        100       100  100     0    0      0     0        0   51 ms  100 ms  100 ms")
        let id1 = DemoFixtures.id(1).short
        #expect(lines.contains("  kill -9 of the echo primary \(id1) (pid 1001, epoch 1) at 8.1s: a new primary with a higher "
            + "epoch after 392 ms, presumed dead after 350 ms, replaced by the scaler after 764 ms"))
        #expect(lines.contains("  workers  ready  peak"))
        #expect(lines.contains("  agents       2"))
        #expect(lines.contains("  echo         3     4"))
        #expect(!lines.contains { $0.hasPrefix("  problem:") })
    }

    @Test func rendersShortLatenciesWithATenth() {
        let text = summary(tally(ok: 3)).render()
        #expect(text.contains("  echo           3         3   3     0    0      0     0        0  2.0 ms  3.0 ms  3.0 ms"))
    }
}
