#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport

/// The demo's local cluster: two agents on loopback and every worker they start, which the demo
/// tracks so that it can kill one on purpose and prove at the end that none is left.
final class DemoCluster {
    let executable: String
    let jobsDirectory: String
    let workDirectory: String
    private(set) var agents: [DemoAgent] = []
    /// Every worker process ever seen in an agent's process group (pid → process).
    private(set) var workersSeen: [Int32: RunningProcess] = [:]

    init(executable: String, jobsDirectory: String, workDirectory: String) {
        self.executable = executable
        self.jobsDirectory = jobsDirectory
        self.workDirectory = workDirectory
    }

    /// Starts agent `number` (`starling up DIR --port 0`), joining the agents already started,
    /// and waits until it listens.
    func startAgent(interrupted: () -> Bool) throws -> DemoAgent {
        let number = agents.count + 1
        var arguments = ["up", jobsDirectory, "--port", "0", "--host", "127.0.0.1", "--log-level", "info"]
        for agent in agents {
            if let address = agent.address { arguments += ["--join", address.description] }
        }
        let agent = try DemoAgent(
            number: number, executable: executable, arguments: arguments,
            logPath: "\(workDirectory)/agent-\(number).log")
        agents.append(agent)
        guard agent.waitUntilListening(timeout: .seconds(15), interrupted: interrupted) else {
            if interrupted() { throw DemoError("interrupted") }
            let tail = agent.logTail().map { "    " + $0 }.joined(separator: "\n")
            throw DemoError("agent \(number) (pid \(agent.pid)) did not start: \(agent.reap() ?? "no 'listening' line within 15 s")\n"
                + "  the end of its log (\(agent.logPath)):\n\(tail)")
        }
        return agent
    }

    /// The record of the first agent that answers `STATUS`.
    func status(timeoutMs: UInt64 = 1_000) -> StatusReport? {
        for agent in agents where !agent.hasExited {
            guard let address = agent.address else { continue }
            if let report = try? StatusClient.fetch(from: address, timeoutMs: timeoutMs) { return report }
        }
        return nil
    }

    /// Processes in the agents' process groups other than the agents: their workers.
    func scanWorkers() -> [RunningProcess] {
        let groups = Set(agents.map(\.pid))
        let agentPIDs = groups
        let found = RunningProcess.all().filter { groups.contains($0.group) && !agentPIDs.contains($0.pid) }
        for process in found where workersSeen[process.pid]?.startTicks != process.startTicks {
            workersSeen[process.pid] = process
        }
        return found
    }

    /// The worker that listens on `address` (from `STATUS`), if it is a child of one of our agents
    /// and runs this same program: the only kind of process the demo ever kills.
    func worker(listeningOn address: String) -> RunningProcess? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]),
              let inode = ListeningSocket.onLoopback(port: port)?.inode
        else { return nil }
        let parents = Set(agents.filter { !$0.hasExited }.map(\.pid))
        return scanWorkers().first { process in
            parents.contains(process.parent) && process.executable == executable
                && process.socketInodes.contains(inode)
        }
    }

    /// How the cluster was stopped.
    struct StopReport {
        var agentEnds: [String] = []
        var workersStopped = 0
        /// Workers that outlived their agent's drain and were killed by the demo.
        var leftoverKilled: [Int32] = []
        /// Processes still alive after everything (should be none).
        var stillAlive: [Int32] = []
    }

    /// SIGTERM to each agent (it drains its workers, then exits); after `grace`, SIGKILL to
    /// anything of ours still running. `hurry` (a second Ctrl-C) cuts the grace short.
    func stop(grace: Duration, hurry: () -> Bool) -> StopReport {
        var report = StopReport()
        _ = scanWorkers()
        for agent in agents { agent.send(SIGTERM) }
        _ = poll(within: grace, every: .milliseconds(50)) { () -> Bool? in
            if hurry() { return true }
            _ = scanWorkers()
            return agents.allSatisfy(\.hasExited) && ours().isEmpty ? true : nil
        }
        for agent in agents where !agent.hasExited {
            agent.send(SIGKILL)
        }
        // What is left in our groups, or among the workers we saw, was caused by us: kill it.
        let leftovers = ours()
        for process in leftovers { process.send(SIGKILL) }
        report.leftoverKilled = leftovers.map(\.pid)
        _ = poll(within: .seconds(3), every: .milliseconds(20)) { () -> Bool? in
            agents.allSatisfy(\.hasExited) && ours().isEmpty ? true : nil
        }
        report.agentEnds = agents.map { "agent \($0.number) (pid \($0.pid)): \($0.reap() ?? "still running")" }
        report.workersStopped = workersSeen.count
        report.stillAlive = ours().map(\.pid) + agents.filter { !$0.hasExited }.map(\.pid)
        return report
    }

    /// Live processes the demo caused, agents aside: in an agent's group and running this program,
    /// or a worker seen earlier (same pid and start time) that is still running.
    private func ours() -> [RunningProcess] {
        let groups = Set(agents.map(\.pid))
        var found: [Int32: RunningProcess] = [:]
        for process in RunningProcess.all() where groups.contains(process.group) && !groups.contains(process.pid) {
            if process.executable == executable || workersSeen[process.pid]?.startTicks == process.startTicks {
                found[process.pid] = process
            }
        }
        for process in workersSeen.values where process.isAlive { found[process.pid] = process }
        return found.values.sorted { $0.pid < $1.pid }
    }
}

extension DemoCluster {
    /// The jobs directory the agents load: `directory` itself, or, when its echo service has fewer
    /// than `echoWorkers` minimum workers, a copy in `workDirectory` whose `echo.toml` asks for
    /// that many (a failover needs a standby to take over, and a second kill needs another).
    /// Returns the directory and a note for the user when it was changed.
    static func prepareJobs(
        directory: String, definitions: [ServiceName: ServiceDefinition], echoWorkers: Int, workDirectory: String
    ) throws -> (path: String, note: String?) {
        let echo = try ServiceName("echo")
        guard let definition = definitions[echo], definition.minWorkers < echoWorkers else { return (directory, nil) }
        let wanted = min(echoWorkers, definition.maxWorkers)
        guard wanted > definition.minWorkers else { return (directory, nil) }
        let copy = "\(workDirectory)/jobs"
        let files = FileManager.default
        try files.createDirectory(atPath: copy, withIntermediateDirectories: true)
        var echoFile: String?
        for name in try files.contentsOfDirectory(atPath: directory) {
            let source = "\(directory)/\(name)"
            guard name.hasSuffix(".toml") else {
                // Programs are found relative to their definition's folder: link them into the copy.
                let absolute = URL(fileURLWithPath: source).standardizedFileURL.path
                try files.createSymbolicLink(atPath: "\(copy)/\(name)", withDestinationPath: absolute)
                continue
            }
            guard var text = try? String(contentsOfFile: source, encoding: .utf8) else { throw DemoError("cannot read \(source)") }
            if let loaded = try? ServiceDefinitionLoader.load(file: source), loaded.service == echo {
                text = Self.setting(text, key: "min_workers", to: wanted)
                echoFile = name
            }
            try text.write(toFile: "\(copy)/\(name)", atomically: false, encoding: .utf8)
        }
        guard let echoFile else { return (directory, nil) }
        return (copy, "\(directory)/\(echoFile) says min_workers = \(definition.minWorkers); this demo runs it with "
            + "min_workers = \(wanted) (a copy in \(copy)), so that an echo standby can take over when the primary dies.")
    }

    /// `text` with the top-level `key = N` line replaced by `key = value` (or appended).
    private static func setting(_ text: String, key: String, to value: Int) -> String {
        var lines = text.components(separatedBy: "\n")
        let line = "\(key) = \(value)  # set by starling demo"
        if let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + " ")
            || $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + "=") })
        {
            lines[index] = line
        } else {
            // Before the first table, if any, so the key stays top-level.
            let table = lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[") } ?? lines.endIndex
            lines.insert(line, at: table)
        }
        return lines.joined(separator: "\n")
    }
}
