#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingClient
import StarlingCore
import StarlingNode
import StarlingTestSupport

/// One run of `starling demo`, on the main thread: start the cluster, wait for it, run the
/// workload with the kills, summarise, stop everything. The workload's lanes run as tasks.
public final class DemoRun {
    private let jobsArgument: String
    private let duration: Duration
    private let keepLogs: Bool
    private let console = DemoConsole()
    private var cluster: DemoCluster?
    private var monitor: DemoMonitor!
    private var definitions: [ServiceName: ServiceDefinition] = [:]
    private var snapshots: [(label: String, counts: [ServiceName: Int])] = []
    private var problems: [String] = []
    private var rateSamples: [(at: ContinuousClock.Instant, answered: Int)] = []
    /// The workload, once started: an interrupted run still tells what it did.
    private var workload: DemoWorkload?

    /// Echo workers the demo wants: a primary, a standby to take over, and one more for the second kill.
    private static let echoWorkers = 3
    private static let echo = ServiceName.literal("echo")

    public init(jobs: String, duration: Duration, keepLogs: Bool) {
        self.jobsArgument = jobs
        self.duration = duration
        self.keepLogs = keepLogs
    }

    private var interrupted: Bool { DemoSignals.received > 0 }

    /// True when the demo passed. From here on SIGINT and SIGTERM stop the demo in order (see
    /// `DemoSignals`) instead of ending this process.
    public func run() -> Bool {
        DemoSignals.install()
        let directory = URL(fileURLWithPath: jobsArgument).standardizedFileURL.path
        let original: [ServiceName: ServiceDefinition]
        let workDirectory: String
        do {
            do {
                original = try ServiceDefinitionLoader.loadAll(directory: directory)
            } catch {
                throw DemoError("\(error)")
            }
            guard original[Self.echo] != nil else {
                throw DemoError("\(jobsArgument) has no echo service (echo.toml with handler = \"echo\"): the demo kills echo workers")
            }
            workDirectory = try Self.makeWorkDirectory()
        } catch {
            console.say("starling demo: \(error)")
            return false
        }
        var passed = false
        var summary: DemoSummary?
        do {
            summary = try runCluster(directory: directory, original: original, workDirectory: workDirectory)
            passed = summary?.passed ?? false
        } catch {
            console.endProgress()
            console.say("")
            console.say("starling demo: \(error)")
            problems.append("\(error)")
            if let total = workload?.tally.total {
                console.say("jobs so far: \(total.submitted) submitted, \(total.answered) answered (\(total.ok) OK), "
                    + "\(total.submitted - total.answered) without an answer when the clients were closed")
            }
        }
        let stopped = stopCluster()
        passed = passed && stopped
        if (passed && !keepLogs) || (cluster?.agents.isEmpty ?? true) {
            try? FileManager.default.removeItem(atPath: workDirectory)
        } else {
            console.say("the agents' logs (their workers' too) are kept in \(workDirectory)")
        }
        console.say("")
        if let summary, summary.passed, stopped {
            console.say("PASS: \(summary.verdict)")
        } else if let summary {
            console.say("FAIL: " + ([summary.verdict] + (stopped ? [] : ["processes were left running"])).joined(separator: "; "))
        } else {
            console.say(interrupted ? "stopped by a signal before the summary" : "FAIL: the demo could not run")
        }
        return passed
    }

    // MARK: - Phases

    private func runCluster(
        directory: String, original: [ServiceName: ServiceDefinition], workDirectory: String
    ) throws -> DemoSummary? {
        let (jobsPath, note) = try DemoCluster.prepareJobs(
            directory: directory, definitions: original, echoWorkers: Self.echoWorkers, workDirectory: workDirectory)
        definitions = try ServiceDefinitionLoader.loadAll(directory: jobsPath)
        monitor = DemoMonitor(minWorkers: definitions.mapValues(\.minWorkers)) { [console] in console.event($0) }
        let executable = try StarlingBinary.selfExecutable()
        let cluster = DemoCluster(executable: executable, jobsDirectory: jobsPath, workDirectory: workDirectory)
        self.cluster = cluster

        console.say("starling demo: a local cluster on loopback, jobs through it while workers are killed, and a summary.")
        console.say("")
        console.say("== 1. two agents (`starling up \(jobsArgument) --port 0`); the second joins the first")
        if let note { console.say("note: \(note)") }
        let services = definitions.keys.sorted().map { "\($0) (min \(definitions[$0]!.minWorkers), max \(definitions[$0]!.maxWorkers))" }
        console.say("services: \(services.joined(separator: ", "))")
        for _ in 0..<2 {
            let agent = try cluster.startAgent { interrupted }
            console.event("agent \(agent.number) started: pid \(agent.pid), listening on \(agent.address!), log \(agent.logPath)")
        }

        console.say("")
        console.say("== 2. the agents elect a scaler, which starts every service's min_workers")
        try waitUntilReady(deadline: .now + .seconds(60), phase: "start-up")
        console.say("")
        if let report = monitor.report { console.say(indent(StatusTable.render(report))) }
        snapshot("ready")
        monitor.tellsPrimaries = true

        console.say("== 3. the workload, for \(duration.components.seconds) s; every answer is checked")
        let kinds = jobKinds()
        for kind in kinds { console.say("  \(kind.summary)") }
        console.say("  the echo primary is killed (kill -9) at \(percent(Self.primaryKillAt)) of the run, an echo standby at \(percent(Self.standbyKillAt))")
        let clients = try cluster.agents.map { agent in
            let others = cluster.agents.filter { $0 !== agent }.compactMap(\.address)
            return try StarlingClient(nodes: ([agent.address!] + others).map(\.socketAddress))
        }
        let workload = DemoWorkload { [console] in console.event("job problem: \($0)") }
        self.workload = workload
        let workloadStart = ContinuousClock.now
        workload.start(kinds: kinds, clients: clients)
        defer {
            // Lanes first, so that none submits again to a closed client.
            workload.stop()
            blockOn { for client in clients { await client.close() } }
        }
        try drive(workload: workload, start: workloadStart)
        console.endProgress()

        console.say("")
        console.say("== 4. summary")
        let summary = DemoSummary(
            tally: workload.tally, kills: monitor.kills, snapshots: snapshots, peak: monitor.peak,
            services: definitions.keys.sorted(), problems: problems)
        console.say(summary.render())
        return summary
    }

    /// The workload's timeline: progress, the two kills, the end of submissions, the answers.
    private func drive(workload: DemoWorkload, start: ContinuousClock.Instant) throws {
        let primaryKill = start + duration * Self.primaryKillAt
        let standbyKill = start + duration * Self.standbyKillAt
        var end = start + duration
        // A loaded machine can take longer than planned to replace the killed primary: the load
        // then runs on, within a bound, so that the second kill still happens under load.
        let latestStandbyKill = end + Self.lateFailoverGrace
        var killedPrimary = false
        var killedStandby = false
        var lastPoll = ContinuousClock.now - .seconds(1)
        while !interrupted {
            let now = ContinuousClock.now
            if now >= end, killedStandby || now >= latestStandbyKill { break }
            let pollEvery: Duration = monitor.pendingKills ? .milliseconds(25) : .milliseconds(200)
            if now - lastPoll >= pollEvery {
                lastPoll = now
                monitor.update(cluster?.status())
            }
            if !killedPrimary, now >= primaryKill {
                killedPrimary = true
                snapshot("kill primary")
                killEcho(primary: true)
            }
            // The second kill waits for the first failover, so that the two are told apart.
            if killedPrimary, !killedStandby, now >= standbyKill, !monitor.pendingKills {
                killedStandby = true
                if now > standbyKill + Self.lateKillNotice {
                    // The load goes on after it for as long as the plan had it.
                    end = max(end, now + duration * (1 - Self.standbyKillAt))
                    console.event("the first failover settled late (the replacement took longer than planned): the standby's kill and the end of the load come later")
                }
                snapshot("kill standby")
                killEcho(primary: false)
            }
            showProgress(workload)
            usleep(20_000)
        }
        if interrupted { throw DemoError("interrupted") }
        if !killedStandby {
            problems.append("the echo standby was not killed: the first failover had not settled \(Self.lateFailoverGrace) after the planned end")
        }
        snapshot("end of load")
        workload.stop()
        console.event("no more new jobs; waiting for the answers of those in flight")
        _ = poll(within: .seconds(40), every: .milliseconds(100)) { () -> Bool? in
            guard workload.lanesRunning > 0, !interrupted else { return true }
            monitor.update(cluster?.status())
            showProgress(workload)
            return nil
        }
        if workload.lanesRunning > 0 { problems.append("\(workload.lanesRunning) lanes still had no answer after 40 s") }
        showProgress(workload)
        console.endProgress()
        console.event("every job has its answer; waiting for the cluster to be back at full strength")
        try waitUntilReady(deadline: .now + .seconds(20), phase: "recovery")
        snapshot("end")
    }

    /// Kills the echo primary, or an echo standby, with SIGKILL: only a process a demo agent started.
    private func killEcho(primary: Bool) {
        let what = primary ? "primary" : "standby"
        let candidates = monitor.members.values
            .filter { $0.service == Self.echo && (primary ? $0.status == .primary : $0.status == .standby) }
            .sorted { primary ? $0.epoch > $1.epoch : $0.id < $1.id }
        let found = candidates.lazy.compactMap { entry in self.cluster?.worker(listeningOn: entry.address).map { (entry, $0) } }.first
        guard let (target, process) = found else {
            console.event("no echo \(what) found among the demo's workers: nothing killed")
            problems.append("the echo \(what) could not be killed: not found")
            return
        }
        let before = monitor.admittedCounts[Self.echo] ?? 0
        let ids = Set(monitor.members.keys)
        let at = ContinuousClock.now
        guard process.send(SIGKILL) else {
            problems.append("kill -9 of pid \(process.pid) failed")
            return
        }
        console.event("kill -9 of the echo \(what) \(target.id.short) (pid \(process.pid), \(target.address), epoch \(target.epoch))")
        console.say(primary
            ? "        it routes every echo job: the others must notice its silence, elect a new primary with a higher\n"
                + "        epoch, and the entry nodes hand the new one every job still unanswered"
            : "        it runs echo jobs: the primary must notice its silence and dispatch its unanswered jobs again")
        monitor.kill(DemoMonitor.Kill(
            what: what, id: target.id, service: Self.echo, pid: process.pid, address: target.address,
            epoch: target.epoch, at: at, elapsedLabel: console.clock.trimmingCharacters(in: .whitespaces),
            workersBefore: before, idsBefore: ids, waitsForFailover: primary))
    }

    /// Polls until every service has its min_workers admitted and a primary, the agents have a
    /// scaler, and no kill is still waiting for its repair.
    private func waitUntilReady(deadline: ContinuousClock.Instant, phase: String) throws {
        let started = ContinuousClock.now
        var missing: [String] = []
        let ready = poll(within: deadline - started, every: .milliseconds(100)) { () -> Bool? in
            if interrupted { return false }
            monitor.update(cluster?.status())
            missing = whatIsMissing()
            return missing.isEmpty ? true : nil
        }
        switch ready {
        case true?:
            console.event("\(phase == "start-up" ? "ready" : "back at full strength") after \(DemoMonitor.ms(.now - started)): "
                + "every service has its min_workers and a primary")
        case false?:
            throw DemoError("interrupted")
        case nil:
            throw DemoError("\(phase): after \(DemoMonitor.ms(.now - started)) still \(missing.joined(separator: "; "))")
        }
    }

    private func whatIsMissing() -> [String] {
        guard let report = monitor.report else { return ["no STATUS answer from the agents"] }
        var missing: [String] = []
        let admitted = monitor.admittedCounts
        if (admitted[.agent] ?? 0) < 2 { missing.append("\(admitted[.agent] ?? 0) of 2 agents admitted") }
        if report.scaler == nil { missing.append("no scaler") }
        for (service, definition) in definitions.sorted(by: { $0.key < $1.key }) {
            let count = admitted[service] ?? 0
            if count < definition.minWorkers { missing.append("\(service): \(count) of \(definition.minWorkers) workers") }
            if monitor.primary(of: service) == nil { missing.append("\(service): no primary") }
        }
        if monitor.pendingKills { missing.append("a killed worker not yet replaced") }
        return missing
    }

    private func stopCluster() -> Bool {
        guard let cluster, !cluster.agents.isEmpty else { return true }
        console.endProgress()
        console.say("")
        console.say("== stopping: SIGTERM to each agent, which drains its workers and exits")
        let report = cluster.stop(grace: .seconds(20)) { DemoSignals.received > 1 }
        for line in report.agentEnds { console.say("  \(line)") }
        if !report.leftoverKilled.isEmpty {
            console.say("  killed with SIGKILL after the agents stopped: pids \(report.leftoverKilled.map(String.init).joined(separator: ", "))")
        }
        if report.stillAlive.isEmpty {
            console.say("  no process of the demo is left: \(cluster.agents.count) agents and the \(report.workersStopped) workers they started are gone")
            return report.leftoverKilled.isEmpty
        }
        console.say("  STILL RUNNING: pids \(report.stillAlive.map(String.init).joined(separator: ", "))")
        return false
    }

    // MARK: - Pieces

    private static let primaryKillAt = 0.35
    private static let standbyKillAt = 0.65
    /// How long past the planned end the load may wait for the first failover to settle.
    private static let lateFailoverGrace: Duration = .seconds(15)
    /// A standby's kill this much past its planned time is told on the console.
    private static let lateKillNotice: Duration = .milliseconds(500)

    private func jobKinds() -> [DemoJobKind] {
        var kinds = [DemoJobKind.echo()]
        if case .builtin(.sha256)? = definitions[.literal("sha256")]?.handler { kinds.append(.sha256()) }
        if case .builtin(.sleep)? = definitions[.literal("sleep")]?.handler {
            kinds.append(.sleep(ms: 200, lanes: 12))
        }
        return kinds
    }

    private func snapshot(_ label: String) {
        snapshots.append((label, monitor.counts))
    }

    private func showProgress(_ workload: DemoWorkload) {
        let total = workload.tally.total
        let now = ContinuousClock.now
        rateSamples.append((now, total.answered))
        rateSamples.removeAll { now - $0.at > .seconds(2) }
        var rate = 0
        if let first = rateSamples.first, now - first.at >= .milliseconds(500) {
            let seconds = Double((now - first.at).components.attoseconds) / 1e18 + Double((now - first.at).components.seconds)
            rate = Int((Double(total.answered - first.answered) / seconds).rounded())
        }
        let bad = total.failed + total.errors + total.wrong + total.unanswered
        let workers = monitor.counts.filter { $0.key != .agent }.sorted { $0.key < $1.key }
            .map { "\($0.key) \($0.value)" }.joined(separator: " · ")
        console.progress("\(console.clock)  jobs: \(total.submitted) sent, \(total.answered) answered, \(bad) failed, "
            + "\(rate)/s │ workers: \(workers)")
    }

    private func percent(_ fraction: Double) -> String {
        let seconds = Double(duration.components.seconds) * fraction
        return "\(Int(fraction * 100)) % (+\(String(format: "%.0f", seconds)) s)"
    }

    private func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
    }

    /// A new directory `/tmp/starling-demo-XXXXXX` of this user's alone, as mkdtemp(3) makes.
    private static func makeWorkDirectory() throws -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var lastError: any Error = DemoError("no name was free")
        for _ in 0..<16 {
            let path = "/tmp/starling-demo-" + String((0..<6).map { _ in letters.randomElement()! })
            do {
                // Not withIntermediateDirectories: it fails when the name is taken, so the directory is new.
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
                return path
            } catch {
                lastError = error
            }
        }
        throw DemoError("cannot create a directory in /tmp: \(lastError)")
    }
}

extension ServiceName {
    /// A name the demo spells itself, valid by construction.
    fileprivate static func literal(_ text: String) -> ServiceName {
        guard let name = try? ServiceName(text) else { preconditionFailure("'\(text)' is not a service name") }
        return name
    }
}
