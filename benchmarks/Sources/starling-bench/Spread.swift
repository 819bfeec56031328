import ArgumentParser
import Foundation
import StarlingClient
import StarlingCore

/// Where the `spread` scenario's client connections enter the cluster.
enum SpreadLoad: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Every connection at one standby, the same one: it cannot run all the jobs itself, so the
    /// primary must place the rest by load.
    case uneven
    /// The connections spread over every worker, the primary included, as clients that pick any
    /// node would.
    case even
}

/// What the `spread` scenario runs: sleep jobs of `sleepMs` on workers of `workerConcurrency` slots.
struct SpreadPlan: Sendable {
    var load: SpreadLoad
    var sleepMs: Int
    var workerConcurrency: Int
    /// Client connections (`StarlingClient`s), all at one standby or spread over the workers.
    var connections: Int
}

/// One worker's part in a `spread` run.
struct SpreadWorker: Codable, Sendable {
    var address: String
    /// `primary` or `standby`, as every worker's record had it before the load.
    var role: String
    /// Client connections that entered the cluster here.
    var connections: Int
    /// Jobs its handler ran in the measured window: the difference of its `starling_jobs_run_total`
    /// (both outcomes) between the window's start and end.
    var jobsRun: UInt64
    /// Its part of all the jobs run in the window (0...1).
    var share: Double

    enum CodingKeys: String, CodingKey {
        case address, role, connections, share
        case jobsRun = "jobs_run"
    }
}

/// What the `spread` scenario measures: where the jobs ran.
struct SpreadFigures: Codable, Sendable {
    /// `uneven` or `even`.
    var load: String
    var sleepMs: Int
    var workerConcurrency: Int
    var workers: [SpreadWorker]
    /// Jobs run in the window, all workers together, and per second.
    var jobsRun: UInt64
    var jobsRunPerSecond: Double
    /// Workers the spread is taken over: the standbys (a primary with standbys runs no job), and
    /// the primary too should it have run any.
    var executors: Int
    /// The coefficient of variation of the jobs each of those executors ran: their population
    /// standard deviation ÷ their mean. 0 is perfectly even; all on one of n gives √(n − 1).
    var spreadCV: Double

    enum CodingKeys: String, CodingKey {
        case load, workers, executors
        case sleepMs = "sleep_ms"
        case workerConcurrency = "worker_concurrency"
        case jobsRun = "jobs_run"
        case jobsRunPerSecond = "jobs_run_per_s"
        case spreadCV = "spread_cv"
    }

    /// The workers' parts from their counts at the window's start (`before`) and end (`after`),
    /// in the order of `workers`.
    init(plan: SpreadPlan, workers: [StartedWorker], primary: NodeID, connections: [Int], before: [UInt64],
         after: [UInt64], measuredS: Double) {
        let ran = zip(before, after).map { $1 >= $0 ? $1 - $0 : 0 }
        let total = ran.reduce(0, +)
        self.workers = workers.indices.map { index in
            SpreadWorker(address: workers[index].address, role: workers[index].id == primary ? "primary" : "standby",
                         connections: connections[index], jobsRun: ran[index],
                         share: total > 0 ? Double(ran[index]) / Double(total) : 0)
        }
        let executors = self.workers.filter { $0.role == "standby" || $0.jobsRun > 0 }.map { Double($0.jobsRun) }
        let mean = executors.isEmpty ? 0 : executors.reduce(0, +) / Double(executors.count)
        let variance = executors.isEmpty ? 0 : executors.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(executors.count)
        load = plan.load.rawValue
        sleepMs = plan.sleepMs
        workerConcurrency = plan.workerConcurrency
        jobsRun = total
        jobsRunPerSecond = measuredS > 0 ? Double(total) / measuredS : 0
        self.executors = executors.count
        spreadCV = mean > 0 ? (variance.squareRoot() / mean * 1_000).rounded() / 1_000 : 0
    }

    /// The report's rows: one per worker, then the spread.
    var rows: [(String, String)] {
        var rows: [(String, String)] = [
            ("load", load == "uneven" ? "uneven: every connection enters at one standby" : "even: the connections spread over every worker"),
            ("sleep jobs", "\(sleepMs) ms each; \(workerConcurrency) slots per worker"),
            ("jobs run", "\(jobsRun) in the window (\(Int(jobsRunPerSecond.rounded())) jobs/s), by worker (/metrics):"),
        ]
        for worker in workers {
            let entry = worker.connections > 0 ? ", entry node of \(worker.connections) connection(s)" : ""
            rows.append(("  \(worker.address)", "\(worker.role)\(entry): \(worker.jobsRun) ("
                + String(format: "%.1f %%", worker.share * 100) + ")"))
        }
        let allOnOne = executors > 1 ? String(format: "%.2f", Double(executors - 1).squareRoot()) : "0"
        rows.append(("spread (CV)", String(format: "%.3f", spreadCV)
            + " over \(executors) executors (0 = even, \(allOnOne) = all on one)"))
        return rows
    }
}

extension StarlingSystem {
    /// `spread`: W workers of service `sleep` with `--http`, the clients' connections at one
    /// standby (or over every worker), each worker's `starling_jobs_run_total` read at the start
    /// and at the end of the measured window.
    static func runSpread(_ plan: ScenarioPlan, spread: SpreadPlan, options: CommonOptions, binary: String,
                          started: (String) -> Void) async throws -> SystemRun {
        let definition = """
            # written by starling-bench: sleep jobs on few slots, so that no one worker can run them all
            handler = "sleep"
            concurrency = \(spread.workerConcurrency)
            timeout_ms = 10000

            """
        let cluster = try Cluster.start(binary: binary, service: "sleep", definition: definition,
                                        count: options.workers, intervalMs: options.interval,
                                        clusterKey: options.clusterKey, extraArguments: ["--http", "127.0.0.1:0"])
        started(cluster.directory)
        let ports = try cluster.workers.map { worker in
            guard let port = worker.httpPort else { throw BenchError("worker \(worker.address) reported no --http address") }
            return port
        }
        let agreement = try await cluster.waitForAgreement()
        // Uneven: every connection at the first standby. Even: connection i at worker i mod W.
        let entries: [StartedWorker]
        switch spread.load {
        case .uneven:
            let standby = cluster.workers.first { $0.id != agreement.primary.id }!
            entries = Array(repeating: standby, count: spread.connections)
        case .even:
            entries = (0..<spread.connections).map { cluster.workers[$0 % cluster.workers.count] }
        }
        let connections = cluster.workers.map { worker in entries.filter { $0.pid == worker.pid }.count }
        writeStderr("starling-bench: \(cluster.workers.count) workers agreed in \(agreement.waitedMs) ms "
            + "(primary \(agreement.primary.address), epoch \(agreement.epoch)); \(plan.concurrency) sleep jobs of "
            + "\(spread.sleepMs) ms outstanding over \(spread.connections) connection(s) at "
            + "\(Set(entries.map(\.address)).count) entry node(s) for \(options.warmup) + \(options.duration) s\n")

        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = max(configuration.maxInFlight, plan.concurrency)
        configuration.requestTimeoutMs = UInt64(options.lostAfterMs)
        let clients = try entries.map { try StarlingClient(nodes: [$0.address], configuration: configuration) }
        for client in clients { try await client.ping() }

        let settings = ScenarioRunner.settings(plan, options: options)
        let start = monotonicNs()
        let measureFrom = start + UInt64(options.warmup * 1e9)
        let measureTo = measureFrom + UInt64(options.duration * 1e9)
        async let before = scrape(ports, at: measureFrom)
        async let after = scrape(ports, at: measureTo)
        let result = await ScenarioRunner.load(settings, start: start) { counters in
            await LoadRun.run(clients: clients, settings: settings, counters: counters, start: start)
        }
        let counts = (await before, await after)
        for client in clients { await client.close() }
        var run = SystemRun(result: result, entryNodes: Set(entries.map(\.address)).count,
                            agreementMs: agreement.waitedMs, directory: cluster.directory)
        run.spread = SpreadFigures(plan: spread, workers: cluster.workers, primary: agreement.primary.id,
                                   connections: connections, before: try counts.0.get(), after: try counts.1.get(),
                                   measuredS: options.duration)
        return run
    }

    /// Each worker's jobs run (`starling_jobs_run_total{service="sleep"}`, both outcomes), read
    /// from its /metrics when the monotonic clock reaches `instant`.
    private static func scrape(_ ports: [UInt16], at instant: UInt64) async -> Result<[UInt64], BenchError> {
        await sleep(until: instant)
        var counts: [UInt64] = []
        for port in ports {
            do {
                let text = try MetricsScrape.get("/metrics", port: port)
                counts.append(UInt64(MetricsScrape.sum("starling_jobs_run_total", ["service": "sleep"], in: text)))
            } catch {
                return .failure(BenchError("cannot read /metrics at 127.0.0.1:\(port): \(error)"))
            }
        }
        return .success(counts)
    }
}

/// A worker's /metrics, read with one blocking HTTP/1.1 request and parsed as far as the bench
/// needs: samples of one family, summed over the series whose labels include some.
enum MetricsScrape {
    /// The body of `GET path` from 127.0.0.1:`port` (a 200 with a Content-Length), within `timeoutMs`.
    static func get(_ path: String, port: UInt16, timeoutMs: Int = 2_000) throws(WireError) -> String {
        let socket = try LoopbackSocket(port: port)
        defer { socket.close() }
        try socket.send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let deadline = monotonicNs() + UInt64(timeoutMs) * 1_000_000
        while true {
            let response = try socket.parse { buffer, offset throws(WireError) -> (Int, String)? in
                try parseResponse(buffer, offset: &offset)
            }
            if let (status, body) = response {
                guard status == 200 else { throw WireError("GET \(path): HTTP \(status)") }
                return body
            }
            let now = monotonicNs()
            guard now < deadline else { throw WireError("GET \(path): no whole answer within \(timeoutMs) ms") }
            _ = try socket.fill(timeoutMs: Int32((deadline - now) / 1_000_000) + 1)
        }
    }

    /// A whole response (status, body) once its head and Content-Length bytes of body are in.
    private static func parseResponse(_ buffer: [UInt8], offset: inout Int) throws(WireError) -> (Int, String)? {
        let bytes = buffer[offset...]
        guard let end = bytes.indices.first(where: { index in
            index + 3 < buffer.endIndex && buffer[index] == 13 && buffer[index + 1] == 10
                && buffer[index + 2] == 13 && buffer[index + 3] == 10
        }) else { return nil }
        let head = String(decoding: buffer[offset..<end], as: UTF8.self).split(separator: "\r\n")
        let statusLine = head.first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw WireError("not an HTTP response") }
        let length = head.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first
        guard let length else { throw WireError("HTTP response without Content-Length") }
        let bodyStart = end + 4
        guard buffer.count - bodyStart >= length else { return nil }
        offset = bodyStart + length
        return (status, String(decoding: buffer[bodyStart..<bodyStart + length], as: UTF8.self))
    }

    /// The sum of the samples of `family` whose labels include `labels`, in the text format 0.0.4.
    static func sum(_ family: String, _ labels: [String: String], in text: String) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(family + "{") || line.hasPrefix(family + " ") {
            let rest = line.dropFirst(family.count)
            var found: [String: String] = [:]
            var valueText = rest
            if rest.first == "{", let close = rest.lastIndex(of: "}") {
                for pair in rest[rest.index(after: rest.startIndex)..<close].split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    found[parts[0].trimmingCharacters(in: .whitespaces)] = String(parts[1].trimmingCharacters(in: .whitespaces)
                        .trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
                }
                valueText = rest[rest.index(after: close)...]
            }
            guard labels.allSatisfy({ found[$0.key] == $0.value }),
                  let value = valueText.split(separator: " ").first.flatMap({ Double($0) })
            else { continue }
            total += value
        }
        return total
    }
}
