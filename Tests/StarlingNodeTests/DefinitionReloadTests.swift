import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGHUP to `starling up` reloads its jobs directory (docs/HANDBOOK.md, "definitions reload"):
/// new and changed services take effect, nothing running restarts, a broken file changes nothing.
@Suite(.serialized) struct DefinitionReloadTests {
    /// The agent's workers by service, each with its PID, once `expected` (service: count) holds.
    private func workers(of agent: AgentProcess, expected: [String: Int]) async -> [String: Set<Int32>]? {
        await pollAsync(within: .seconds(15), every: .milliseconds(50)) { () -> [String: Set<Int32>]? in
            guard let members = agent.status()?.members else { return nil }
            var byService: [String: Set<Int32>] = [:]
            for pid in agent.workerPIDs() {
                guard let port = agent.listeningPort(of: pid),
                      let member = members.first(where: { (try? NodeAddress(parsing: $0.address))?.port == port }) else { return nil }
                byService[member.service.value, default: []].insert(pid)
            }
            return byService.mapValues(\.count) == expected ? byService : nil
        }
    }

    @Test("SIGHUP after adding, changing and breaking jobs/*.toml: new workers as defined, none restarted, the agent lives on")
    func sighupReloadsDefinitions() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "slow", definition: AgentProcessTests.slow)
        let agent = try AgentProcess(jobs: jobs)
        defer { agent.stopAndReap() }
        let before = try #require(await workers(of: agent, expected: ["slow": 1]), "the agent started its worker")

        // A new service: its min_workers are started; the slow worker keeps its PID.
        try Data("handler = \"echo\"\nmin_workers = 2\n".utf8).write(to: URL(fileURLWithPath: "\(jobs)/fresh.toml"))
        let signalled = ContinuousClock.now
        agent.process.signal(SIGHUP)
        let added = try #require(await workers(of: agent, expected: ["slow": 1, "fresh": 2]), "fresh got its 2 workers")
        print("SIGHUP with jobs/fresh.toml added: its 2 workers after \(ContinuousClock.now - signalled)")
        #expect(added["slow"] == before["slow"], "the slow worker was not restarted")
        #expect(agent.process.isRunning)

        // A changed service: min_workers 1 -> 2 adds one; nothing running restarts.
        try Data(AgentProcessTests.slow.replacingOccurrences(of: "min_workers = 1", with: "min_workers = 2").utf8)
            .write(to: URL(fileURLWithPath: "\(jobs)/slow.toml"))
        agent.process.signal(SIGHUP)
        let changed = try #require(await workers(of: agent, expected: ["slow": 2, "fresh": 2]), "slow raised to 2")
        #expect(changed["slow"]!.isSuperset(of: before["slow"]!) && changed["fresh"] == added["fresh"], "\(changed) after \(added)")

        // A broken file: the previous definitions stay, the error names the file, the agent runs on.
        try Data("handler = \"echo\"\nmin_workers = \n".utf8).write(to: URL(fileURLWithPath: "\(jobs)/broken.toml"))
        agent.process.signal(SIGHUP)
        let logged = await pollAsync(within: .seconds(5)) { () -> String? in
            (ProcFile.read(agent.logURL.path) ?? "").split(separator: "\n")
                .first { $0.contains("SIGHUP: kept the previous service definitions") }.map(String.init)
        }
        let error = try #require(logged, "the failed reload is logged")
        print("SIGHUP with a broken jobs/broken.toml: \(error)")
        #expect(error.contains("\(jobs)/broken.toml:2"), "\(error)")
        #expect(error.contains(" error "), "logged as an error: \(error)")
        #expect(agent.process.isRunning, "SIGHUP never stops the agent")
        #expect(agent.status() != nil, "the agent still answers")

        // The broken file removed, the next reload finds nothing changed: the failed one kept the set.
        try FileManager.default.removeItem(atPath: "\(jobs)/broken.toml")
        agent.process.signal(SIGHUP)
        let unchanged = await pollAsync(within: .seconds(5)) { () -> Bool? in
            (ProcFile.read(agent.logURL.path) ?? "").contains("SIGHUP: service definitions unchanged") ? true : nil
        }
        #expect(unchanged == true)
        #expect(await workers(of: agent, expected: ["slow": 2, "fresh": 2]) == changed, "nothing started or stopped")
    }
}
