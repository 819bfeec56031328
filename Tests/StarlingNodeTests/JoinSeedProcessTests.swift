import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import Testing

/// A worker whose `--join` seeds never answer says so, instead of silently running alone.
@Suite struct JoinSeedProcessTests {
    private static let warning = "no --join seed has answered"

    @Test("seeds that never answer: a warning naming them, not repeated every tick; a seed that answers: none")
    func silentSeedsAreWarnedAbout() async throws {
        let seed = try WorkerProcess(service: "lonely")
        defer { seed.kill() }
        let joined = try WorkerProcess(service: "lonely", join: [seed.address])
        defer { joined.kill() }
        // A port nobody answers on: free a moment ago, and nothing of this test binds it.
        let nobody = NodeAddress(host: .ipv4(0x7F00_0001), port: try RawSocket.freePort())
        let alone = try WorkerProcess(service: "lonely", join: [nobody])
        defer { alone.kill() }

        let warned = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> String? in
            alone.log.split(separator: "\n").first { $0.contains(Self.warning) }.map(String.init)
        }
        let line = try #require(warned, "no warning in: \(alone.log.suffix(2000))")
        #expect(line.contains("\(nobody)"), "the warning names the seed: \(line)")
        // It still runs, alone: its own primary.
        #expect(alone.status()?.members.count == 1)
        // Two seconds in, once: the next is due 10 s later, not at the next tick. A second warning
        // is watched for over ten intervals; the gaps are read from the lines' own times, since this
        // test may be starved for seconds on a loaded machine and then find several at once.
        _ = await pollAsync(within: .seconds(1), every: .milliseconds(50)) { () -> Bool? in
            alone.log.components(separatedBy: Self.warning).count > 2 ? true : nil
        }
        let times = alone.log.split(separator: "\n").filter { $0.contains(Self.warning) }.compactMap { line in
            try? Date(String(line.prefix { $0 != " " }), strategy: .iso8601)
        }
        #expect(!times.isEmpty, "the warning lines' times could not be read")
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later.timeIntervalSince(earlier) >= 9, "warnings at \(times): repeated within 10 s")
        }
        // The worker that joined a live seed (started before, so past the same point) says nothing.
        #expect(!joined.log.contains(Self.warning), "\(joined.log.suffix(2000))")
        #expect(joined.status()?.members.count == 2)
    }
}
