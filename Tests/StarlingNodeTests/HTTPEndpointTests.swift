import Foundation
import StarlingClient
import StarlingCore
import StarlingTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The `--http` endpoints of real processes (README, "HTTP"; docs/METRICS.md): what Prometheus
/// reads, and how the server holds hostile or broken requests to its bounds.
@Suite struct HTTPEndpointTests {
    static let echo = """
        handler = "echo"
        concurrency = 4
        min_workers = 1
        max_workers = 2

        """

    /// Every family docs/METRICS.md promises, as sample names Python's parser reports.
    static let families = [
        "starling_jobs_submitted_total", "starling_jobs_answered_total", "starling_jobs_run_total",
        "starling_job_duration_seconds_bucket",
        "starling_job_duration_seconds_count", "starling_members", "starling_primary_epoch", "starling_queue_depth",
        "starling_key_shards_held",
        "starling_rejected_total", "starling_peer_links_up", "starling_peer_link_reconnects_total",
        "starling_peer_link_bytes_total", "starling_failovers_total", "starling_scaler_decisions_total",
    ]

    @Test("two agents with --http: after 200 echo jobs, /metrics parses with prometheus_client, has every family and counts the 200 as ok at their entry agent")
    func metricsCountJobsAtTheirEntryAgent() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: Self.echo)
        let first = try AgentProcess(jobs: jobs, extra: ["--http", "127.0.0.1:0"])
        defer { first.stopAndReap() }
        let second = try AgentProcess(jobs: jobs, join: [first.address], extra: ["--http", "127.0.0.1:0"])
        defer { second.stopAndReap() }
        let entryHTTP = try #require(first.httpAddress)
        let otherHTTP = try #require(second.httpAddress)

        let ready = await pollAsync(within: .seconds(15)) { () -> Bool? in
            first.status()?.primaries(of: "echo").count == 1 ? true : nil
        }
        try #require(ready == true, "no echo primary in the first agent's record")
        let client = try StarlingClient(nodes: [first.address.description], configuration: .init())
        var answered = 0
        for n in 0..<200 {
            let answer = try await client.submit(service: "echo", payload: Array("job \(n)".utf8), key: "metrics-\(n)")
            if case .ok = answer { answered += 1 }
        }
        await client.close()
        #expect(answered == 200)
        // A refused request must be counted too (and makes the rejections family appear).
        let refused = try HTTPTestConnection(port: entryHTTP.port)
        refused.send("DELETE /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        #expect(refused.readResponse()?.status == 405)

        let metrics = try #require(try HTTPTestConnection.get("/metrics", port: entryHTTP.port))
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let samples = try PrometheusSamples(parsing: metrics.body)
        for family in Self.families {
            #expect(samples.contains(family), "no \(family) in /metrics")
        }
        #expect(samples.value("starling_jobs_submitted_total", ["service": "echo"]) == 200)
        #expect(samples.value("starling_jobs_answered_total", ["service": "echo", "outcome": "ok"]) == 200)
        #expect(samples.value("starling_jobs_answered_total", ["service": "echo", "outcome": "fail"]) == 0)
        #expect(samples.value("starling_job_duration_seconds_count", ["service": "echo"]) == 200)
        #expect(samples.value("starling_rejected_total", ["reason": "http_method"]) == 1)
        #expect(samples.value("starling_members", ["service": "echo", "status": "primary"]) == 1)
        #expect(samples.value("starling_members", ["service": "agent", "status": "primary"]) == 1)
        #expect((samples.value("starling_primary_epoch", ["service": "echo"]) ?? 0) >= 1)

        // The other agent was nobody's entry node: it counts no job.
        let other = try PrometheusSamples(parsing: try #require(try HTTPTestConnection.get("/metrics", port: otherHTTP.port)).body)
        #expect((other.value("starling_jobs_submitted_total", ["service": "echo"]) ?? 0) == 0)
    }

    @Test("three workers with --http, 60 sleep jobs and 5 bad ones through one standby: starling_jobs_run_total over the workers sums to the jobs run, by outcome")
    func jobsRunAreCountedAtTheirExecutors() async throws {
        let jobs = try WorkerProcess.jobsDirectory(service: "nap", definition: "handler = \"sleep\"\nconcurrency = 2\n")
        let seed = try WorkerProcess(service: "nap", extra: ["--jobs", jobs, "--http", "127.0.0.1:0"])
        var workers = [seed]
        for _ in 0..<2 {
            workers.append(try WorkerProcess(service: "nap", join: [seed.address], extra: ["--jobs", jobs, "--http", "127.0.0.1:0"]))
        }
        defer { workers.forEach { $0.kill() } }
        let primary = try #require(awaitAgreement(workers, within: 10)?["nap"], "the workers did not agree on a primary")
        let entry = try #require(workers.first { $0.id != primary.id })

        // Eight at a time through one standby, more than its two slots: the primary places the rest.
        let client = try StarlingClient(nodes: [entry.address.description], configuration: .init())
        let results = try await withThrowingTaskGroup(of: [JobAnswer].self) { group in
            for lane in 0..<8 {
                group.addTask {
                    var answers: [JobAnswer] = []
                    for n in stride(from: lane, to: 65, by: 8) {
                        // Jobs 60...64 are not decimal milliseconds: the handler runs and fails them.
                        answers.append(try await client.submit(
                            service: "nap", payload: Array((n < 60 ? "3" : "nap").utf8), key: "run-\(n)"))
                    }
                    return answers
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        await client.close()
        #expect(results.filter { $0 == .ok(Array("slept 3 ms".utf8)) }.count == 60)
        #expect(results.filter { if case .failed = $0 { true } else { false } }.count == 5)

        // Each executor counts a job before it sends the outcome on, so the answers above came after.
        var scrapes: [PrometheusSamples] = []
        for worker in workers {
            let port = try #require(worker.httpAddress).port
            scrapes.append(try PrometheusSamples(parsing: try #require(try HTTPTestConnection.get("/metrics", port: port)).body))
        }
        let ok = scrapes.map { $0.value("starling_jobs_run_total", ["service": "nap", "outcome": "ok"]) ?? 0 }
        let failed = scrapes.map { $0.value("starling_jobs_run_total", ["service": "nap", "outcome": "fail"]) ?? 0 }
        #expect(ok.reduce(0, +) == 60, "jobs run ok per worker: \(ok)")
        #expect(failed.reduce(0, +) == 5, "jobs run and failed per worker: \(failed)")
        // Entry node counts are the entry node's alone: the others were nobody's entry node.
        let submitted = scrapes.map { $0.value("starling_jobs_submitted_total", ["service": "nap"]) ?? 0 }
        #expect(submitted == workers.map { $0 === entry ? 65 : 0 })
    }

    @Test("--http: keep-alive, HEAD, 404, 405, /api/status as JSON")
    func answersWhatItShould() throws {
        let worker = try WorkerProcess(service: "echo", extra: ["--http", "127.0.0.1:0"])
        let port = try #require(worker.httpAddress).port
        let connection = try HTTPTestConnection(port: port)
        for _ in 0..<3 {
            connection.send("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            let answer = try #require(connection.readResponse())
            #expect(answer.status == 200)
            #expect(answer.headers["connection"] == "keep-alive")
        }
        // Pipelined: both answered, in order, on the same connection.
        connection.send("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(connection.readResponse()?.status == 404)
        let head = try #require(connection.readResponse(omitsBody: true))
        #expect(head.status == 200 && head.body.isEmpty && Int(head.headers["content-length"] ?? "0")! > 0)
        connection.send("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        let post = try #require(connection.readResponse())
        #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")

        let status = try #require(try HTTPTestConnection.get("/api/status", port: port))
        #expect(status.headers["content-type"] == "application/json")
        let report = try StatusReport(json: status.body)
        #expect(report.selfID == worker.id)

        // HTTP/1.0 without keep-alive: answered, then closed.
        let once = try HTTPTestConnection(port: port)
        once.send("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(once.readResponse()?.headers["connection"] == "close")
        #expect(once.isClosedByServer())
    }

    @Test("--http: garbage, an oversized head, a body and a slow sender are refused, closed and counted")
    func refusesWhatBreaksItsBounds() throws {
        let worker = try WorkerProcess(
            service: "echo", extra: ["--http", "127.0.0.1:0", "--http-request-timeout", "300"])
        let port = try #require(worker.httpAddress).port

        let garbage = try HTTPTestConnection(port: port)
        garbage.send("\u{1}\u{2} nonsense\r\n\r\n")
        #expect(garbage.readResponse()?.status == 400)
        #expect(garbage.isClosedByServer())

        let huge = try HTTPTestConnection(port: port)
        huge.send("GET /metrics HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
        #expect(huge.readResponse()?.status == 431)
        #expect(huge.isClosedByServer())

        let body = try HTTPTestConnection(port: port)
        body.send("GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        #expect(body.readResponse()?.status == 413)
        #expect(body.isClosedByServer())

        // Half a request, then nothing: cut off once the request timeout passes.
        let slow = try HTTPTestConnection(port: port)
        slow.send("GET /metrics HTTP/1.1\r\nHost: t\r\n")
        #expect(slow.readResponse()?.status == 408)
        #expect(slow.isClosedByServer())

        let metrics = try PrometheusSamples(parsing: try #require(try HTTPTestConnection.get("/metrics", port: port)).body)
        for reason in ["http_bad_request", "http_head_too_large", "http_body_too_large", "http_request_timeout"] {
            #expect(metrics.value("starling_rejected_total", ["reason": reason]) == 1, "\(reason)")
        }
        // The server still serves.
        #expect(try HTTPTestConnection.get("/metrics", port: port)?.status == 200)
    }
}

/// The samples of a Prometheus text exposition, as Python's `prometheus_client` parser reads them
/// (the parser Prometheus users rely on: if it rejects the text, so would they).
struct PrometheusSamples {
    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    static let parser = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        samples = []
        for family in text_string_to_metric_families(sys.stdin.read()):
            for s in family.samples:
                samples.append({"name": s.name, "labels": s.labels, "value": s.value})
        print(json.dumps(samples))
        """

    let samples: [Sample]

    init(parsing text: [UInt8]) throws {
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", Self.parser]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        python.standardInput = input
        python.standardOutput = output
        python.standardError = errors
        try python.run()
        input.fileHandleForWriting.write(Data(text))
        try input.fileHandleForWriting.close()
        let json = output.fileHandleForReading.readDataToEndOfFile()
        let problems = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        guard python.terminationStatus == 0 else { throw PrometheusParseError(message: problems) }
        samples = try JSONDecoder().decode([Sample].self, from: json)
    }

    func contains(_ name: String) -> Bool { samples.contains { $0.name == name } }

    /// The value of the sample with this name whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }?.value
    }
}

struct PrometheusParseError: Error, CustomStringConvertible {
    var message: String
    var description: String { "prometheus_client refused the text: \(message)" }
}
