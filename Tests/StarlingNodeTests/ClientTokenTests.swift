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

/// Client tokens end to end (issue 10 item 5; docs/PROTOCOL.md, "Authentication"): real workers and
/// an agent started with `--client-token-file`, plain sockets, the CLI and `StarlingClient`.
@Suite("client tokens", .serialized)
struct ClientTokenTests {
    private static let unauthorized = "ERR - UNAUTHORIZED "

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A fresh token: letters, digits and punctuation, as an operator might write one.
    private func newToken() -> String { "tok-\(UUID().uuidString)-!~" }

    /// The worker's record, asked with `token`, once it is primary of its service.
    private func awaitPrimary(_ worker: WorkerProcess, token: ClientToken?) -> StatusReport? {
        poll(within: .seconds(10), every: .milliseconds(20)) { () -> StatusReport? in
            guard let report = try? StatusClient.fetch(from: worker.address, timeoutMs: 1_000, token: token),
                  report.selfStatus == .primary else { return nil }
            return report
        }
    }

    /// Sends `bytes` without half-closing and reads until the worker closes (or `timeoutMs`):
    /// what it answered, and whether it was the worker that closed.
    private func exchangeLeavingOpen(_ bytes: [UInt8], with port: UInt16, timeoutMs: Int = 5_000) throws -> (answer: String, closed: Bool) {
        let fd = try RawSocket.connectTCP(to: port)
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int(timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return (text(answer), true) }
            if n < 0 { return (text(answer), false) }  // timed out: still open
            answer += chunk[..<n]
        }
    }

    /// Reads from `fd` until `expected` bytes came (or 5 s).
    private func read(_ fd: Int32, count expected: Int) -> String {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while answer.count < expected {
            let n = recv(fd, &chunk, min(chunk.count, expected - answer.count), 0)
            if n <= 0 { break }
            answer += chunk[..<n]
        }
        return text(answer)
    }

    private func write(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try SpawnedProcess(
            executable: try WorkerProcess.binary(), arguments: arguments, stdout: .pipe, stderr: .pipe)
        let run = process.collect(timeout: .seconds(60))
        let status = run.status.signal == 0 ? Int32(run.status.code) : 128 + run.status.signal
        return (status, text(run.stdout), text(run.stderr))
    }

    @Test("no AUTH or a wrong token: ERR - UNAUTHORIZED and closed; either token of the file: WELCOME, then jobs; all counted, no token logged")
    func theContract() throws {
        let (first, second) = (newToken(), newToken())
        let file = try SecretFiles.write(["# two clients", first, "", second])
        let worker = try WorkerProcess(service: "echo", extra: ["--client-token-file", file])
        defer { worker.kill() }
        let token = try ClientToken(first)
        try #require(awaitPrimary(worker, token: token) != nil)
        let port = worker.address.port

        // No AUTH: refused and closed, though the client leaves its side open.
        let noAuth = try exchangeLeavingOpen(bytes("SUBMIT echo k1 5\r\nhello\r\n"), with: port)
        #expect(noAuth.answer.hasPrefix(Self.unauthorized) && noAuth.answer.hasSuffix("\r\n"), "\(noAuth.answer)")
        #expect(noAuth.answer.split(separator: "\r\n").count == 1, "nothing but the refusal")
        #expect(noAuth.closed, "the worker closes once the refusal is written")
        for first in ["PING\r\n", "STATUS\r\n", "HELLO\r\n", "AUTH\r\n", "AUTH a b\r\n"] {
            let refused = try exchangeLeavingOpen(bytes(first + "PING\r\n"), with: port)
            #expect(refused.answer.hasPrefix(Self.unauthorized) && refused.closed, "\(first): \(refused.answer)")
        }
        // A wrong token, then requests pipelined after it: none is handled.
        let wrong = try exchangeLeavingOpen(bytes("AUTH \(newToken())\r\nSUBMIT echo k2 5\r\nhello\r\nPING\r\n"), with: port)
        #expect(wrong.answer == Self.unauthorized + "token not accepted\r\n", "\(wrong.answer)")
        #expect(wrong.closed)

        // Each token of the file: WELCOME, then what was pipelined after AUTH, in order.
        for (n, right) in [first, second].enumerated() {
            let answer = text(try RawSocket.exchangeTCP(
                bytes("AUTH \(right)\r\nSUBMIT echo ok\(n) 5\r\nhello\r\nPING\r\n"), with: port, timeoutMs: 10_000))
            let lines = answer.split(separator: "\r\n", omittingEmptySubsequences: false)
            #expect(lines.first == "WELCOME", "\(answer)")
            #expect(answer.contains("OK ok\(n) 5\r\nhello\r\n") && answer.contains("PONG\r\n"), "\(answer)")
        }
        // AUTH again after WELCOME is checked again: right, WELCOME; wrong, refused.
        let again = text(try RawSocket.exchangeTCP(bytes("AUTH \(first)\r\nAUTH \(second)\r\nPING\r\nAUTH nope\r\nPING\r\n"), with: port))
        #expect(again == "WELCOME\r\nWELCOME\r\nPONG\r\n" + Self.unauthorized + "token not accepted\r\n", "\(again)")

        let report = try StatusClient.fetch(from: worker.address, token: token)
        let refusals = 1 + 5 + 1 + 1
        #expect(report.rejected["client_unauthorized"] == UInt64(refusals), "\(report.rejected)")
        #expect(!worker.log.contains(first) && !worker.log.contains(second), "a token reached the log")
        #expect(worker.log.contains("client_unauthorized"))
    }

    @Test("a token file holds what AUTH can carry: up to ClientToken.maxBytes, and no more")
    func boundsAgree() throws {
        let longest = String(repeating: "z", count: ClientToken.maxBytes)
        let file = try SecretFiles.write(["# first", longest, "second"])
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try ClientTokens.read(path: file).map(\.value) == [longest, "second"])
        try SecretFiles.rewrite(file, [longest + "z"])
        #expect(throws: SecretFileError.self) { try ClientTokens.read(path: file) }
    }

    @Test("without --client-token-file: AUTH with any token is welcome, and no AUTH is needed")
    func openWorkerWelcomesAnyToken() throws {
        let worker = try WorkerProcess(service: "echo")
        defer { worker.kill() }
        #expect(text(try RawSocket.exchangeTCP(bytes("PING\r\n"), with: worker.address.port)) == "PONG\r\n")
        let answer = text(try RawSocket.exchangeTCP(bytes("AUTH anything\r\nPING\r\nAUTH\r\nPING\r\n"), with: worker.address.port))
        #expect(answer == "WELCOME\r\nPONG\r\nERR - BAD_REQUEST usage: AUTH <token> (one token, no spaces)\r\nPONG\r\n", "\(answer)")
    }

    @Test("SIGHUP after rewriting the file: new connections need the new token; one authenticated before stays")
    func reloadSwapsTokensForNewConnections() throws {
        let (old, new) = (newToken(), newToken())
        let file = try SecretFiles.write([old])
        let worker = try WorkerProcess(service: "echo", extra: ["--client-token-file", file])
        defer { worker.kill() }
        try #require(awaitPrimary(worker, token: try ClientToken(old)) != nil)
        let port = worker.address.port

        let kept = try RawSocket.connectTCP(to: port)
        defer { close(kept) }
        write(kept, "AUTH \(old)\r\n")
        #expect(read(kept, count: 9) == "WELCOME\r\n")

        try SecretFiles.rewrite(file, [new])
        worker.signal(SIGHUP)
        // The reload is the worker's own business: poll until the new token is taken.
        let swapped = poll(within: .seconds(10), every: .milliseconds(20)) { () -> Bool? in
            let answer = text((try? RawSocket.exchangeTCP(bytes("AUTH \(new)\r\nPING\r\n"), with: port)) ?? [])
            return answer == "WELCOME\r\nPONG\r\n" ? true : nil
        }
        #expect(swapped == true, "the new token is taken after SIGHUP")
        let stale = text(try RawSocket.exchangeTCP(bytes("AUTH \(old)\r\nPING\r\n"), with: port))
        #expect(stale == Self.unauthorized + "token not accepted\r\n", "\(stale)")

        write(kept, "SUBMIT echo kept 4\r\nkept\r\n")
        #expect(read(kept, count: 17) == "OK kept 4\r\nkept\r\n", "a connection authenticated before the reload stays")
        #expect(!worker.log.contains(old) && !worker.log.contains(new))
    }

    @Test("starling submit and status --token-file; without it: UNAUTHORIZED, exit 2 and a failed status")
    func commandLine() throws {
        let secret = newToken()
        let file = try SecretFiles.write([secret])
        let worker = try WorkerProcess(service: "echo", extra: ["--client-token-file", file])
        defer { worker.kill() }
        try #require(awaitPrimary(worker, token: try ClientToken(secret)) != nil)
        let node = worker.address.description

        let ok = try run(["submit", "--node", node, "--token-file", file, "echo", "hello"])
        #expect(ok.status == 0 && ok.stdout == "hello", "\(ok)")
        let refused = try run(["submit", "--node", node, "echo", "hello"])
        #expect(refused.status == 2 && refused.stderr.hasPrefix("UNAUTHORIZED: "), "\(refused)")
        let wrongFile = try SecretFiles.write([newToken()])
        let wrong = try run(["submit", "--node", node, "--token-file", wrongFile, "echo", "hello"])
        #expect(wrong.status == 2 && wrong.stderr.contains("token not accepted"), "\(wrong)")

        let status = try run(["status", "--node", node, "--token-file", file, "--json"])
        #expect(status.status == 0, "\(status)")
        let report = try StatusReport(json: bytes(status.stdout))
        #expect(report.selfID == worker.id)
        #expect(report.rejected["client_unauthorized"] == 2, "\(report.rejected)")
        let table = try run(["status", "--node", node, "--token-file", file])
        #expect(table.status == 0 && table.stdout.contains("\(worker.id.short)*"), "\(table)")
        let noToken = try run(["status", "--node", node])
        #expect(noToken.status != 0 && noToken.stderr.contains("UNAUTHORIZED"), "\(noToken)")

        // A token file group or others may read is refused before anything is sent.
        let loose = try SecretFiles.write([secret])
        _ = chmod(loose, 0o644)
        let looseRun = try run(["submit", "--node", node, "--token-file", loose, "echo", "x"])
        #expect(looseRun.status == 64 && looseRun.stderr.contains("chmod 600"), "\(looseRun)")
        #expect(!looseRun.stderr.contains(secret) && !wrong.stderr.contains(secret))
        let looseStatus = try run(["status", "--node", node, "--token-file", loose])
        #expect(looseStatus.status == 64, "\(looseStatus)")
    }

    @Test("StarlingClient with the token gets answers; without it, or with another, .unauthorized")
    func client() async throws {
        let secret = newToken()
        let file = try SecretFiles.write([secret])
        let worker = try WorkerProcess(service: "echo", extra: ["--client-token-file", file])
        defer { worker.kill() }
        try #require(awaitPrimary(worker, token: try ClientToken(secret)) != nil)

        var configuration = StarlingClient.Configuration()
        configuration.token = try ClientToken(secret)
        let client = try StarlingClient(nodes: [worker.address.description], configuration: configuration)
        let answers = try await submitConcurrently(100) { n in
            try await client.submit(service: "echo", payload: Array("job \(n)".utf8), key: "tok-\(n)")
        }
        #expect(answers.count == 100)
        #expect(answers.allSatisfy { $0.value == .ok(Array("job \($0.key)".utf8)) })
        try await client.ping()
        await client.close()

        await expectUnauthorized(at: worker.address, token: nil)
        await expectUnauthorized(at: worker.address, token: try ClientToken(newToken()))
    }

    private func expectUnauthorized(at address: NodeAddress, token: ClientToken?) async {
        var configuration = StarlingClient.Configuration()
        configuration.token = token
        guard let client = try? StarlingClient(nodes: [address.description], configuration: configuration) else {
            Issue.record("no client")
            return
        }
        let result: Result<JobAnswer, StarlingClientError>
        do throws(StarlingClientError) {
            result = .success(try await client.submit(service: "echo", payload: Array("x".utf8)))
        } catch {
            result = .failure(error)
        }
        await client.close()
        guard case .failure(.unauthorized(let node, _)) = result else {
            Issue.record("token \(String(describing: token)): got \(result)")
            return
        }
        #expect(node == address.description)
    }

    @Test("an agent with --client-token-file hands it to its workers: a job submitted at a worker needs the token")
    func agentHandsTheFileToItsWorkers() async throws {
        let secret = newToken()
        let file = try SecretFiles.write([secret])
        let token = try ClientToken(secret)
        let jobs = try WorkerProcess.jobsDirectory(service: "echo", definition: "handler = \"echo\"\nmin_workers = 1\n")
        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("starling-agent-\(UUID().uuidString.prefix(8)).log")
        let starling = try StarlingProcess(
            executable: try WorkerProcess.binary(),
            arguments: ["up", jobs, "--port", "0", "--client-token-file", file, "--worker-log-level", "info"],
            logPath: logURL.path, ownProcessGroup: true)
        let agent = starling.spawned
        defer {
            agent.signal(SIGTERM)
            _ = agent.wait(timeout: .seconds(15))
            // The agent's own process group, which this test created: anything left of it.
            _ = Glibc.kill(-agent.pid, SIGKILL)
            agent.kill()
        }
        let listening = try #require(starling.waitUntilListening(as: .agent, timeout: .seconds(10)), "\(starling.log)")

        // The agent itself wants the token.
        let refused = text(try RawSocket.exchangeTCP(bytes("STATUS\r\n"), with: listening.address.port))
        #expect(refused.hasPrefix(Self.unauthorized), "\(refused)")
        let workerAddress = try #require(await pollAsync(within: .seconds(15), every: .milliseconds(50)) { () -> NodeAddress? in
            guard let report = try? StatusClient.fetch(from: listening.address, timeoutMs: 1_000, token: token),
                  let entry = report.members.first(where: { $0.service.value == "echo" && $0.status == .primary })
            else { return nil }
            return try? NodeAddress(parsing: entry.address)
        }, "the agent started an echo worker")

        let noAuth = text(try RawSocket.exchangeTCP(bytes("SUBMIT echo a1 2\r\nhi\r\n"), with: workerAddress.port))
        #expect(noAuth.hasPrefix(Self.unauthorized), "the worker wants the token: \(noAuth)")
        let authed = text(try RawSocket.exchangeTCP(
            bytes("AUTH \(secret)\r\nSUBMIT echo a2 2\r\nhi\r\n"), with: workerAddress.port, timeoutMs: 10_000))
        #expect(authed == "WELCOME\r\nOK a2 2\r\nhi\r\n", "\(authed)")
        let workerReport = try StatusClient.fetch(from: workerAddress, token: token)
        #expect(workerReport.rejected["client_unauthorized"] == 1, "\(workerReport.rejected)")
        #expect(!starling.log.contains(secret))
    }
}
