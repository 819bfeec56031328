import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--log-format` on real processes: a worker's stderr is all JSON; an agent's stderr, its workers'
/// lines included, is all JSON or, in text mode, names the worker on every relayed line.
@Suite(.serialized) struct LogFormatProcessTests {
    static let keys: Set<String> = ["time", "level", "node", "service", "message", "fields"]

    /// Every line of `log` as a JSON object with exactly the record's keys; records an issue for
    /// any line that is not. An unfinished last line is left out unless the log is `complete`.
    private func records(_ log: String, complete: Bool = false) -> [[String: Any]] {
        var records: [[String: Any]] = []
        for line in log.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                Issue.record("not one JSON object: \(line)")
                continue
            }
            #expect(Set(object.keys) == Self.keys, "\(line)")
            #expect(object["fields"] is [String: Any], "\(line)")
            let time = object["time"] as? String ?? ""
            #expect(time.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z/) != nil, "\(line)")
            records.append(object)
        }
        if complete { #expect(log.isEmpty || log.hasSuffix("\n"), "the log ends mid-line") }
        return records
    }

    /// Workers of `service` in `agent`'s record, once there are `count`.
    private func workerIDs(_ service: String, count: Int, of agent: AgentProcess) async -> Set<String>? {
        await pollAsync(within: .seconds(15), every: .milliseconds(50)) { () -> Set<String>? in
            guard let members = agent.status()?.members.filter({ $0.service.value == service }),
                  members.count == count, agent.workerPIDs().count == count else { return nil }
            return Set(members.map(\.id.description))
        }
    }

    /// Breaks `service`'s definition and kills one of its workers: the replacements refuse the file
    /// and exit at once, writing plain text (the argument parser's error) to the agent.
    private func makeAWorkerFailToStart(_ service: String, jobs: String, agent: AgentProcess) throws {
        try Data("handler = \"echo\"\nconcurrency = 0\n".utf8).write(to: URL(fileURLWithPath: "\(jobs)/\(service).toml"))
        let victim = try #require(agent.workerPIDs().first)
        _ = Glibc.kill(victim, SIGKILL)
    }

    @Test("starling worker --log-format json: every stderr line is one JSON object naming the worker")
    func workerWritesJSON() async throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--log-format", "json", "--log-level", "debug"])
        let primary = await pollAsync(within: .seconds(5)) { worker.status()?.selfStatus == .primary ? true : nil }
        #expect(primary == true)
        worker.signal(SIGHUP)
        _ = await pollAsync(within: .seconds(5)) { worker.log.contains("SIGHUP: reloaded") ? true : nil }
        worker.signal(SIGTERM)
        #expect(worker.process.wait(timeout: .seconds(10)) == ChildProcess.ExitStatus(code: 0, signal: 0))

        let records = records(worker.log, complete: true)
        print("worker --log-format json: \(records.count) lines, all JSON; the first: \(worker.log.prefix { $0 != "\n" })")
        #expect(records.count >= 5)
        for record in records {
            #expect(record["node"] as? String == worker.id.description, "\(record)")
            #expect(record["service"] as? String == "echo")
            #expect(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(record["level"] as? String ?? ""))
        }
        let messages = records.compactMap { $0["message"] as? String }
        #expect(messages.contains("status standby -> primary"), "\(messages)")
        #expect(messages.contains("SIGHUP: reloaded"), "\(messages)")
    }

    @Test("starling up --log-format json: the agent's stderr is all JSON, worker lines carry the worker's node")
    func agentRelaysJSON() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: "handler = \"echo\"\nmin_workers = 2\n")
        let agent = try AgentProcess(jobs: jobs, extra: ["--log-format", "json"])
        defer { agent.stopAndReap() }
        let workers = try #require(await workerIDs("echo", count: 2, of: agent), "two workers started")
        // Their `listening on` lines come from the worker itself, at info.
        let heard = await pollAsync(within: .seconds(5)) { () -> Bool? in
            let nodes = Set(records(ProcFile.read(agent.logURL.path) ?? "").filter { $0["service"] as? String == "echo" }
                .compactMap { $0["node"] as? String })
            return nodes == workers ? true : nil
        }
        #expect(heard == true, "a line from each worker, with its own node")

        try makeAWorkerFailToStart("echo", jobs: jobs, agent: agent)
        let wrapped = await pollAsync(within: .seconds(15), every: .milliseconds(50)) { () -> [String: Any]? in
            records(ProcFile.read(agent.logURL.path) ?? "").first { record in
                (record["fields"] as? [String: Any])?["relayed"] as? String == "not JSON"
                    && (record["message"] as? String ?? "").contains("concurrency: must be in 1...1024, got 0")
            }
        }
        let line = try #require(wrapped, "the failed worker's plain-text error, wrapped")
        #expect(line["level"] as? String == "error")
        #expect(line["service"] as? String == "echo")
        #expect(line["node"] is NSNull, "the worker never got as far as an id")

        agent.stopAndReap()
        let log = ProcFile.read(agent.logURL.path) ?? ""
        let all = records(log, complete: true)
        for record in all {
            let node = record["node"] as? String
            if record["service"] as? String == "agent" {
                #expect(node == agent.id.description, "\(record)")
            } else if let node {
                #expect(workers.contains(node), "a worker line with a node that is no worker: \(record)")
            } else {
                #expect((record["fields"] as? [String: Any])?["relayed"] as? String == "not JSON", "\(record)")
            }
        }
        print("up --log-format json: \(all.count) lines, all JSON; \(all.filter { $0["service"] as? String == "echo" }.count) from workers")
    }

    @Test("starling up (text): every relayed worker line names its worker")
    func agentRelaysTextWithTheWorkersID() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: "handler = \"echo\"\nmin_workers = 2\n")
        let agent = try AgentProcess(jobs: jobs)
        defer { agent.stopAndReap() }
        let workers = try #require(await workerIDs("echo", count: 2, of: agent), "two workers started")
        let heard = await pollAsync(within: .seconds(5)) { () -> Bool? in
            let log = ProcFile.read(agent.logURL.path) ?? ""
            return workers.allSatisfy { log.contains("node=\($0)") } ? true : nil
        }
        #expect(heard == true, "a line from each worker, with its id")

        try makeAWorkerFailToStart("echo", jobs: jobs, agent: agent)
        let prefixed = await pollAsync(within: .seconds(15), every: .milliseconds(50)) { () -> String? in
            (ProcFile.read(agent.logURL.path) ?? "").split(separator: "\n").first {
                $0.hasPrefix("[worker echo pid ") && $0.contains("concurrency: must be in 1...1024, got 0")
            }.map(String.init)
        }
        #expect(prefixed != nil, "the failed worker's plain-text error, labelled with its service and pid")

        agent.stopAndReap()
        let lines = (ProcFile.read(agent.logURL.path) ?? "").split(separator: "\n")
        for line in lines {
            if line.contains(" starling.agent: ") {
                #expect(line.contains("node=\(agent.id)"), "\(line)")
            } else {
                let named = workers.contains { line.contains($0) } || line.hasPrefix("[worker ")
                #expect(named, "a relayed line that names no worker: \(line)")
            }
        }
        print("up (text): \(lines.count) lines, \(lines.filter { !$0.contains(" starling.agent: ") }.count) relayed from workers, each naming its worker")
    }
}
