import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `starling up` agents on loopback: the scaler admits, retires and replaces workers.
@Suite(.serialized) struct AgentProcessTests {
    static let slow = """
        handler = "sleep"
        concurrency = 1
        min_workers = 1
        max_workers = 4
        scale_up_backlog = 2
        scale_down_idle_ms = 3000

        """

    /// Workers of `service` in `agent`'s record (not draining).
    private func workers(_ service: String, seenBy agent: AgentProcess) -> [StatusReport.Entry]? {
        agent.status()?.members.filter { $0.service.value == service }
    }

    /// Waits (10 s at most) until `agent` sees exactly one `slow` worker, and not `gone`.
    private func replacement(of gone: NodeID, seenBy agent: AgentProcess) async -> Bool {
        await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> Bool? in
            guard let now = workers("slow", seenBy: agent) else { return nil }
            return now.count == 1 && now[0].id != gone ? true : nil
        } == true
    }

    @Test("one service: min 1 at start; a burst scales to 4, all answered; idle back to 1; a killed worker replaced")
    func scalesUpDownAndReplaces() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "slow", definition: Self.slow)
        let agent = try AgentProcess(jobs: jobs)
        defer { agent.stopAndReap() }

        let one = await pollAsync(within: .seconds(10)) { () -> Bool? in workers("slow", seenBy: agent)?.count == 1 ? true : nil }
        #expect(one == true, "exactly one worker at start")
        // It stays one: nothing calls for more.
        try await Task.sleep(for: .seconds(1))
        #expect(workers("slow", seenBy: agent)?.count == 1)

        let client = try StarlingClient(nodes: [agent.address.description], configuration: .init())
        let peak = Counter()
        let agentAddress = agent.address
        let sampler = Task {
            while !Task.isCancelled {
                if let report = try? StatusClient.fetch(from: agentAddress, timeoutMs: 1_000) {
                    let count = report.members.filter { $0.service.value == "slow" }.count
                    let seen = peak.value.load(ordering: .relaxed)
                    if count > seen { peak.value.store(count, ordering: .relaxed) }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        let burstStarted = ContinuousClock.now
        let answers = try await submitConcurrently(200) { n in
            try await client.submit(service: "slow", payload: Array("50".utf8), key: "burst-\(n)")
        }.values
        let burst = ContinuousClock.now - burstStarted
        sampler.cancel()
        await client.close()
        #expect(answers.count == 200)
        #expect(answers.allSatisfy { $0 == .ok(Array("slept 50 ms".utf8)) }, "\(Set(answers.map { "\($0)" }))")
        print("burst of 200 jobs of 50 ms: \(burst), peak of \(peak.value.load(ordering: .relaxed)) workers")
        #expect(peak.value.load(ordering: .relaxed) == 4, "the burst raised it to max_workers")

        let idleFrom = ContinuousClock.now
        let backToOne = await pollAsync(within: .seconds(30), every: .milliseconds(100)) { () -> Bool? in workers("slow", seenBy: agent)?.count == 1 ? true : nil }
        #expect(backToOne == true, "back to min_workers within 30 s of idling")
        print("back to 1 worker after \(ContinuousClock.now - idleFrom) of idling")

        let victim = try #require(workers("slow", seenBy: agent)?.first)
        let victimPID = try #require(agent.workerPIDs().first { agent.listeningPort(of: $0) == (try? NodeAddress(parsing: victim.address))?.port })
        _ = Glibc.kill(victimPID, SIGKILL)
        let killedAt = ContinuousClock.now
        let replaced = await replacement(of: victim.id, seenBy: agent)
        #expect(replaced, "a worker killed with -9 is replaced within 10 s")
        print("kill -9 of the only worker: replaced after \(ContinuousClock.now - killedAt)")
    }

    @Test("an agent killed with -9: its workers drain and stop on their own")
    func workersDoNotOutliveTheirAgent() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "slow", definition: Self.slow)
        let agent = try AgentProcess(jobs: jobs)
        defer { agent.stopAndReap() }
        let started = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> [Int32]? in
            let pids = agent.workerPIDs()
            return workers("slow", seenBy: agent)?.count == 1 && pids.count == 1 ? pids : nil
        }
        let orphans = try #require(started, "the agent started its worker")
        agent.kill()
        let killedAt = ContinuousClock.now
        let gone = await pollAsync(within: .seconds(10), every: .milliseconds(20)) { () -> Bool? in agent.workerPIDs().isEmpty ? true : nil }
        #expect(gone == true, "worker \(orphans) still runs after its agent was killed")
        print("agent killed with -9: its worker stopped after \(ContinuousClock.now - killedAt)")
    }

    @Test("two agents: killing the scaler's agent stops its workers and leaves scaling to the other")
    func scalingSurvivesTheScalersAgent() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "slow", definition: Self.slow)
        let first = try AgentProcess(jobs: jobs)
        defer { first.stopAndReap() }
        let second = try AgentProcess(jobs: jobs, join: [first.address])
        defer { second.stopAndReap() }
        let ready = await pollAsync(within: .seconds(10)) { () -> StatusReport? in
            guard let report = second.status(), report.scaler != nil,
                  report.members.filter({ $0.service.value == "agent" }).count == 2,
                  report.members.filter({ $0.service.value == "slow" }).count == 1 else { return nil }
            return report
        }
        let report = try #require(ready)
        let scaler = try #require(report.scaler)
        let (doomed, survivor) = scaler == first.id ? (first, second) : (second, first)
        let orphans = doomed.workerPIDs()
        doomed.kill()

        // The killed agent's workers drain and stop on their own: nothing outlives its agent.
        let orphansGone = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> Bool? in doomed.workerPIDs().isEmpty ? true : nil }
        #expect(orphansGone == true, "workers \(orphans) of the killed agent still run: \(doomed.workerPIDs())")

        // The survivor becomes the scaler and keeps one worker, on its own host.
        let takeover = await pollAsync(within: .seconds(5)) { () -> Bool? in survivor.status()?.scaler == survivor.id ? true : nil }
        #expect(takeover == true)
        let kept = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> (member: StatusReport.Entry, pid: Int32)? in
            guard let now = workers("slow", seenBy: survivor), now.count == 1,
                  let port = (try? NodeAddress(parsing: now[0].address))?.port,
                  let pid = survivor.workerPIDs().first(where: { survivor.listeningPort(of: $0) == port }) else { return nil }
            return (now[0], pid)
        }
        let (worker, pid) = try #require(kept)

        // It replaces a worker that dies.
        _ = Glibc.kill(pid, SIGKILL)
        let replaced = await replacement(of: worker.id, seenBy: survivor)
        #expect(replaced, "the surviving agent's scaler replaced the dead worker")
    }
}

/// A `starling up` process started by a test, and the workers it starts (its descendants).
///
/// The agent runs in a process group of its own, which its workers inherit: stopping the group
/// stops exactly what the test caused, even workers whose agent was killed.
final class AgentProcess {
    let process: SpawnedProcess
    let id: NodeID
    let address: NodeAddress
    let logURL: URL

    init(jobs: String, join: [NodeAddress] = []) throws {
        var arguments = ["up", jobs, "--port", "0", "--worker-log-level", "info"]
        for seed in join { arguments += ["--join", seed.description] }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("starling-agent-\(UUID().uuidString.prefix(8)).log")
        let starling = try StarlingProcess(
            executable: try WorkerProcess.binary(), arguments: arguments, logPath: logURL.path, ownProcessGroup: true)
        self.process = starling.spawned
        guard let listening = starling.waitUntilListening(as: .agent, timeout: .seconds(10)) else {
            _ = Glibc.kill(-process.pid, SIGKILL)
            process.kill()
            throw WorkerProcessError.noListeningLine(line: starling.lastOtherLine, log: starling.log)
        }
        self.id = listening.id
        self.address = listening.address
    }

    func status() -> StatusReport? {
        try? StatusClient.fetch(from: address, timeoutMs: 1_000)
    }

    /// The workers it started that run now, even those orphaned by its death (its process group).
    func workerPIDs() -> [Int32] {
        RunningProcess.members(ofGroup: process.pid).map(\.pid).filter { $0 != process.pid }
    }

    /// The TCP port a process listens on, from /proc.
    func listeningPort(of pid: Int32) -> UInt16? {
        RunningProcess.read(pid)?.listeningPorts.first
    }

    /// SIGKILL of the agent alone: its workers live on, orphaned.
    func kill() {
        process.kill()
    }

    /// SIGTERM (the agent drains its workers), then SIGKILL for anything left in its group.
    func stopAndReap() {
        process.signal(SIGTERM)
        process.wait(timeout: .seconds(15))
        _ = Glibc.kill(-process.pid, SIGKILL)
        process.kill()
    }
}
