import Foundation
import StarlingClient
import StarlingCore
import StarlingUV
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Polls `condition` until it holds or `seconds` pass; returns whether it held.
private func eventually(within seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        await Task.yield()
        try? await Task.sleep(for: .milliseconds(5))  // polling interval, not synchronisation
    }
    return condition()
}

/// A port nothing listens on: a fake node's, after it stopped.
/// A loopback port bound but never listening: every connect is refused at once, and no other
/// process (a concurrent test's worker, say) can take the port while this lives.
private final class RefusingPort {
    private let fd: Int32
    let address: SocketAddress

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, bound else {
            if fd >= 0 { close(fd) }
            throw POSIXError(.EADDRNOTAVAIL)
        }
        self.fd = fd
        address = try SocketAddress(ip: "127.0.0.1", port: UInt16(bigEndian: local.sin_port))
    }

    deinit { close(fd) }
}

private func fastFailover() -> StarlingClient.Configuration {
    var configuration = StarlingClient.Configuration()
    configuration.backoffInitialMs = 10
    configuration.backoffMaxMs = 40
    configuration.connectTimeoutMs = 1_000
    configuration.requestTimeoutMs = 20_000
    return configuration
}

@Suite struct StarlingClientTests {
    @Test func pipelinesAThousandConcurrentSubmitsAnsweredOutOfOrder() async throws {
        let node = try FakeNode(FakeBehavior(answerBatch: 1000, seed: 7))
        defer { node.stop() }
        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = 1000
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)

        let answers = try await withThrowingTaskGroup(of: (Int, JobAnswer).self) { group in
            for i in 0..<1000 {
                group.addTask { (i, try await client.submit(service: "echo", payload: bytes("job \(i)"))) }
            }
            var answers: [Int: JobAnswer] = [:]
            for try await (i, answer) in group { answers[i] = answer }
            return answers
        }
        #expect(answers.count == 1000)
        for i in 0..<1000 { #expect(answers[i] == .ok(bytes("job \(i)"))) }
        let seen = node.seen
        #expect(seen.connections == 1, "one shared connection")
        #expect(seen.keys.count == 1000 && Set(seen.keys).count == 1000, "generated keys are unique")
        #expect(seen.maxHeld == 1000, "all 1000 were in flight at once, then answered shuffled")
        await client.close()
    }

    @Test func binaryPayloadsAndExplicitKeysRoundTrip() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address.description])
        let payloads: [[UInt8]] = [[], [0], Array(0...255), bytes("a\r\nb\nc\r\n\r\n"), [UInt8](repeating: 0x0D, count: 70_000)]
        for (i, payload) in payloads.enumerated() {
            #expect(try await client.submit(service: "echo", payload: payload, key: "bin:\(i)") == .ok(payload))
        }
        #expect(node.seen.keys == (0..<payloads.count).map { "bin:\($0)" })
        await client.close()
    }

    @Test func failAndErrAreAnswersNotErrors() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        let client = try StarlingClient(nodes: [("127.0.0.1", node.address.port)])
        #expect(try await client.submit(service: "fail", payload: bytes("x")) == .failed("exit status 3"))
        #expect(try await client.submit(service: "nosuch", payload: []) == .error(code: .noService, message: "no such service"))
        try await client.ping()
        #expect(try await client.status() == bytes("{\"fake\":true}"))
        await client.close()
    }

    @Test func localChecksComeBeforeAnythingIsSent() async throws {
        var configuration = StarlingClient.Configuration()
        configuration.maxPayloadBytes = 10
        let refusing = try RefusingPort()
        let client = try StarlingClient(nodes: [refusing.address], configuration: configuration)
        let big = try await client.submit(service: "echo", payload: [UInt8](repeating: 1, count: 11))
        guard case .error(.tooLarge, _) = big else {
            Issue.record("got \(big)")
            return
        }
        await #expect(throws: StarlingClientError.self) { try await client.submit(service: "Bad Name", payload: []) }
        await #expect(throws: StarlingClientError.self) { try await client.submit(service: "echo", payload: [], key: "no spaces") }
        await client.close()
        withExtendedLifetime(refusing) {}

        #expect(throws: StarlingClientError.self) { try StarlingClient(nodes: [String]()) }
        #expect(throws: StarlingClientError.self) { try StarlingClient(nodes: ["example.com:80"]) }
        #expect(throws: StarlingClientError.self) { try StarlingClient(nodes: ["127.0.0.1:0"]) }
        var bad = StarlingClient.Configuration()
        bad.maxInFlight = 0
        #expect(throws: StarlingClientError.self) { try StarlingClient(nodes: ["127.0.0.1:1"], configuration: bad) }
    }

    @Test func eachServiceNameIsCheckedWhateverCameBefore() async throws {
        // The client remembers the last valid name: a different one is still checked in full.
        let node = try FakeNode()
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        #expect(try await client.submit(service: "echo", payload: bytes("a")) == .ok(bytes("a")))
        for bad in ["echo ", "Echo", "", "-echo", "ech\u{00F6}"] {
            await #expect(throws: StarlingClientError.self) { try await client.submit(service: bad, payload: []) }
        }
        #expect(try await client.submit(service: "echo", payload: bytes("b")) == .ok(bytes("b")))
        #expect(try await client.submit(service: "nosuch", payload: []) == .error(code: .noService, message: "no such service"))
        #expect(try await client.submit(service: "echo", payload: bytes("c")) == .ok(bytes("c")))
        await client.close()
    }

    @Test func failsOverToTheNextNodeAndResubmitsWithTheSameKeys() async throws {
        // The first node reads 5 jobs, answers none and drops the connection (killed worker); the
        // second answers everything twice, so duplicates must be dropped.
        let first = try FakeNode(FakeBehavior(closeAfterJobs: 5))
        defer { first.stop() }
        let second = try FakeNode(FakeBehavior(duplicateAnswers: true))
        defer { second.stop() }
        let client = try StarlingClient(nodes: [first.address, second.address], configuration: fastFailover())

        let count = 20
        let answers = try await withThrowingTaskGroup(of: (Int, JobAnswer).self) { group in
            for i in 0..<count {
                group.addTask { (i, try await client.submit(service: "echo", payload: bytes("p\(i)"), key: "fo-\(i)")) }
            }
            var answers: [(Int, JobAnswer)] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        #expect(answers.count == count, "every caller answered exactly once")
        #expect(Set(answers.map(\.0)) == Set(0..<count))
        for (i, answer) in answers { #expect(answer == .ok(bytes("p\(i)"))) }

        let lost = first.seen.keys
        #expect(lost.count == 5)
        let resubmitted = Set(second.seen.keys)
        #expect(Set(lost).isSubset(of: resubmitted), "jobs lost with the first node were resubmitted with their keys")
        #expect(resubmitted == Set((0..<count).map { "fo-\($0)" }))
        #expect(second.seen.keys.count == count, "each job sent once to the second node")

        // The client stays on the second node.
        #expect(try await client.submit(service: "echo", payload: bytes("after"), key: "after") == .ok(bytes("after")))
        #expect(second.seen.connections == 1)
        await client.close()
    }

    @Test func allNodesDownIsAClearErrorNotAHang() async throws {
        var configuration = fastFailover()
        configuration.maxConnectAttempts = 5
        let refusing = [try RefusingPort(), try RefusingPort()]
        let nodes = refusing.map(\.address)
        let client = try StarlingClient(nodes: nodes, configuration: configuration)
        let started = ContinuousClock.now
        do throws(StarlingClientError) {
            _ = try await client.submit(service: "echo", payload: bytes("x"))
            Issue.record("answered by a node that is down")
        } catch {
            guard case .unreachable(let names, let attempts, let lastError) = error else {
                Issue.record("got \(error)")
                return
            }
            #expect(names == nodes.map(\.description))
            #expect(attempts == 5)
            #expect(lastError.contains("ECONNREFUSED"))
            #expect(error.description.contains("no node reachable"))
        }
        // Five refused connects with 10-40 ms backoff take well under a second; the bound only
        // catches a hang (the error kind above already excludes the 20 s request timeout) and is
        // generous because this runs beside CPU-heavy tests on two cores.
        #expect(ContinuousClock.now - started < .seconds(60))
        // A later call starts over (and fails the same way).
        await #expect(throws: StarlingClientError.self) { try await client.ping() }
        await client.close()
        withExtendedLifetime(refusing) {}
    }

    @Test func closeFailsPendingCallsAndLaterCalls() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        let pending = (0..<5).map { i in
            Task { try await client.submit(service: "slow", payload: bytes("\(i)")) }
        }
        #expect(await eventually { node.seen.keys.count == 5 })
        await client.close()
        for task in pending {
            let result = await task.result
            #expect(throws: StarlingClientError.closed) { try result.get() }
        }
        await #expect(throws: StarlingClientError.closed) { try await client.submit(service: "echo", payload: []) }
        await client.close()  // idempotent
    }

    @Test func requestTimeoutAndCancellation() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        var configuration = StarlingClient.Configuration()
        configuration.requestTimeoutMs = 150
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)
        await #expect(throws: StarlingClientError.timedOut(ms: 150)) {
            try await client.submit(service: "slow", payload: [])
        }

        // A client with a long timeout, so that a slow machine cannot turn the cancel into a timeout.
        configuration.requestTimeoutMs = 30_000
        let patient = try StarlingClient(nodes: [node.address], configuration: configuration)
        defer { Task { await patient.close() } }
        let cancelled = Task { try await patient.submit(service: "slow", payload: [], key: "c1") }
        #expect(await eventually { node.seen.keys.contains("c1") })
        cancelled.cancel()
        let outcome = await cancelled.result
        #expect(throws: StarlingClientError.cancelled) { try outcome.get() }
        // The connection is still fine.
        #expect(try await client.submit(service: "echo", payload: bytes("ok")) == .ok(bytes("ok")))
        await client.close()
    }

    @Test func inFlightCapHoldsCallersBackAndOverflowIsRefused() async throws {
        let node = try FakeNode(FakeBehavior(answerBatch: 4))
        defer { node.stop() }
        var configuration = StarlingClient.Configuration()
        configuration.maxInFlight = 4
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)
        let answers = try await withThrowingTaskGroup(of: JobAnswer.self) { group in
            for i in 0..<40 { group.addTask { try await client.submit(service: "echo", payload: bytes("\(i)")) } }
            var answers: [JobAnswer] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        #expect(answers.count == 40)
        #expect(node.seen.maxHeld == 4, "never more than maxInFlight jobs at the node")
        await client.close()

        configuration.maxInFlight = 1
        configuration.maxWaiting = 0
        let tight = try StarlingClient(nodes: [node.address], configuration: configuration)
        let blocker = Task { try await tight.submit(service: "slow", payload: [], key: "blocker") }
        #expect(await eventually { node.seen.keys.contains("blocker") })
        await #expect(throws: StarlingClientError.overloaded(inFlight: 1, waiting: 0)) {
            try await tight.submit(service: "echo", payload: [])
        }
        await tight.close()
        let blocked = await blocker.result
        #expect(throws: StarlingClientError.closed) { try blocked.get() }
    }

    // MARK: - Tokens (docs/PROTOCOL.md, "Authentication")

    @Test func aTokenIsSentFirstAndCallsWaitForWelcome() async throws {
        let node = try FakeNode(FakeBehavior(answerBatch: 1, token: "t0ken"))
        defer { node.stop() }
        var configuration = fastFailover()
        configuration.token = try ClientToken("t0ken")
        #expect(!"\(configuration)".contains("t0ken"), "a configuration prints without its token")
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)
        let answers = try await withThrowingTaskGroup(of: JobAnswer.self) { group in
            for i in 0..<50 { group.addTask { try await client.submit(service: "echo", payload: bytes("p\(i)")) } }
            var all: [JobAnswer] = []
            for try await answer in group { all.append(answer) }
            return all
        }
        #expect(Set(answers) == Set((0..<50).map { JobAnswer.ok(bytes("p\($0)")) }))
        try await client.ping()
        #expect(node.seen.auths == 1 && node.seen.refusals == 0 && node.seen.connections == 1)
        await client.close()
    }

    @Test func aTokenWorksAgainstAnOpenNode() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        var configuration = fastFailover()
        configuration.token = try ClientToken("anything")
        let client = try StarlingClient(nodes: [node.address], configuration: configuration)
        #expect(try await client.submit(service: "echo", payload: bytes("x")) == .ok(bytes("x")))
        #expect(node.seen.auths == 1)
        await client.close()
    }

    @Test func refusedTokenOrNoneFailsEveryPendingCallAtOnceWithoutFailover() async throws {
        let first = try FakeNode(FakeBehavior(token: "right"))
        defer { first.stop() }
        let second = try FakeNode(FakeBehavior(token: "right"))
        defer { second.stop() }
        for token in [try ClientToken("wrong"), nil] {
            var configuration = fastFailover()
            configuration.token = token
            // What is asserted is that a refusal is not taken elsewhere: a connect that a busy
            // machine made slower than fastFailover's 1 s would be, rightly, and prove nothing.
            configuration.connectTimeoutMs = 15_000
            let client = try StarlingClient(nodes: [first.address, second.address], configuration: configuration)
            let calls = (0..<5).map { i in
                Task { try await client.submit(service: "echo", payload: bytes("\(i)")) }
            }
            for call in calls {
                let result = await call.result
                guard case .failure(let error) = result, case .unauthorized(let node, let message) = error as? StarlingClientError else {
                    Issue.record("token \(String(describing: token)): got \(result)")
                    continue
                }
                #expect(node == first.address.description)
                #expect(!message.isEmpty)
            }
            await client.close()
        }
        #expect(first.seen.refusals == 2)
        #expect(first.seen.keys.isEmpty, "no job was read before WELCOME")
        #expect(second.seen.connections == 0, "a refused token is not tried elsewhere")
    }

    @Test func tasksOnTheClientExecutorRunOnItsLoopThread() async throws {
        let node = try FakeNode(FakeBehavior(answerBatch: 50, seed: 3))
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        let threads = Box<Set<UInt>>([])
        let answers = try await withThrowingTaskGroup(of: [JobAnswer].self) { group in
            for task in 0..<50 {
                group.addTask(executorPreference: client.executor) {
                    var answers: [JobAnswer] = []
                    for round in 0..<4 {
                        answers.append(try await client.submit(service: "echo", payload: bytes("\(task).\(round)")))
                        let thread = UInt(pthread_self())
                        threads.value.withLock { _ = $0.insert(thread) }
                    }
                    return answers
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(answers.count == 200 && answers.allSatisfy { if case .ok = $0 { true } else { false } })
        let seen = threads.value.withLock { $0 }
        #expect(seen.count == 1, "every task resumed on the client's one loop thread")
        #expect(!seen.contains(UInt(pthread_self())))
        await client.close()
    }

    @Test func closingStrandsNoTaskOnTheClientExecutor() async throws {
        let node = try FakeNode()
        defer { node.stop() }
        let client = try StarlingClient(nodes: [node.address])
        let pending = (0..<5).map { i in
            Task(executorPreference: client.executor) { try await client.submit(service: "slow", payload: bytes("\(i)")) }
        }
        #expect(await eventually { node.seen.keys.count == 5 })
        await client.close()
        for task in pending {
            let result = await task.result
            #expect(throws: StarlingClientError.closed) { try result.get() }
        }
        // The loop thread is gone: a task that prefers its executor now runs elsewhere.
        let late = Task(executorPreference: client.executor) { try await client.submit(service: "echo", payload: []) }
        let result = await late.result
        #expect(throws: StarlingClientError.closed) { try result.get() }
    }
}
