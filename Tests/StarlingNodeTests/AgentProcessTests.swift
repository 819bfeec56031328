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
    @Test("starling up refuses a definition whose service is not its file name, naming both")
    func upRefusesADefinitionUnderAnotherName() throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: "service = \"resize\"\nhandler = \"echo\"\n")
        let process = try SpawnedProcess(
            executable: try WorkerProcess.binary(), arguments: ["up", jobs, "--port", "0"], stdout: .pipe, stderr: .pipe)
        let run = process.collect(timeout: .seconds(30))
        let stderr = String(decoding: run.stderr, as: UTF8.self)
        #expect(run.status != ChildProcess.ExitStatus(code: 0, signal: 0), "\(stderr)")
        #expect(stderr.contains("\(jobs)/echo.toml: service: says \"resize\" but the file is named \"echo.toml\""), "\(stderr)")
        #expect(!String(decoding: run.stdout, as: UTF8.self).contains("listening on"))
    }

    @Test("workers that keep failing to start: a warning with their stderr, and starts that slow down")
    func failingWorkersBackOff() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "flaky", definition: "handler = \"echo\"\nmax_workers = 1\n")
        let agent = try AgentProcess(jobs: jobs)
        defer { agent.stopAndReap() }
        let started = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> Int32? in
            let pids = agent.workerPIDs()
            return workers("flaky", seenBy: agent)?.count == 1 && pids.count == 1 ? pids[0] : nil
        }
        let first = try #require(started, "the agent started its worker")

        // The operator breaks the definition while the agent runs (the agent read it at its start,
        // each worker reads it again); then the worker dies, and every replacement refuses the file.
        try Data("handler = \"echo\"\nconcurrency = 0\n".utf8).write(to: URL(fileURLWithPath: "\(jobs)/flaky.toml"))
        _ = Glibc.kill(first, SIGKILL)
        let starts = StartTimes(known: [first])
        let enough = await pollAsync(within: .seconds(40), every: .milliseconds(5)) { () -> Bool? in
            starts.record(agent.workerPIDs())
            return starts.times.count >= 4 ? true : nil
        }
        #expect(enough == true, "only \(starts.times.count) starts after the kill")
        let gaps = zip(starts.times.dropFirst(), starts.times).map { later, earlier in later - earlier }
        print("failing worker starts, gaps between them: \(gaps)")
        // 0.5 s doubling: each gap (the wait plus a start that fails) clearly longer than the last.
        for (later, earlier) in zip(gaps.dropFirst(), gaps) {
            #expect(later > earlier + .milliseconds(500), "gaps \(gaps)")
        }
        #expect(gaps.last.map { $0 >= .milliseconds(3_500) } == true, "gaps \(gaps)")
        let log = ProcFile.read(agent.logURL.path) ?? ""
        let warnings = log.split(separator: "\n").filter { $0.contains("worker of flaky exited") }
        #expect(warnings.count >= 4, "\(log.suffix(3000))")
        // The worker's own words, from its stderr: the key at fault in the file it refused.
        #expect(warnings.last.map { $0.contains("flaky.toml: concurrency: must be in 1...1024, got 0") } == true,
                "\(warnings.last ?? "")")
        #expect(warnings.contains { $0.contains("waits 2000 ms") } && warnings.contains { $0.contains("waits 4000 ms") },
                "\(warnings)")
    }
}

/// When each worker not seen before was first seen.
private final class StartTimes {
    private var known: Set<Int32>
    private(set) var times: [ContinuousClock.Instant] = []

    init(known: Set<Int32>) {
        self.known = known
    }

    func record(_ pids: [Int32]) {
        for pid in pids where known.insert(pid).inserted {
            times.append(.now)
        }
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

    init(jobs: String, join: [NodeAddress] = [], extra: [String] = []) throws {
        var arguments = ["up", jobs, "--port", "0", "--worker-log-level", "info"]
        for seed in join { arguments += ["--join", seed.description] }
        arguments += extra
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
