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

/// Forged peer frames from an outsider without the cluster key, against keyed workers: one test per
/// attack class of issue 10, each showing nothing changed and the rejection counted by reason.
@Suite(.serialized) struct PeerSecurityTests {
    /// Starts `count` workers of `service` sharing the key file `key` and waits until they agree.
    private func keyedCluster(_ service: String, count: Int, definition: String, key: String) throws -> [WorkerProcess] {
        let jobs = try WorkerProcess.jobsDirectory(service: service, definition: definition)
        let seed = try WorkerProcess(service: service, extra: ["--jobs", jobs, "--cluster-key-file", key])
        var all = [seed]
        for _ in 1..<count {
            all.append(try WorkerProcess(
                service: service, join: [seed.address], extra: ["--jobs", jobs, "--cluster-key-file", key]))
        }
        guard awaitAgreement(all, within: 10) != nil else {
            all.forEach { $0.kill() }
            throw JobTestError.noAgreement
        }
        return all
    }

    /// Sends `frames` to every worker both ways an outsider can: plain after a hello, and after
    /// the start of a sealed handshake with a made-up proof. Each connection must be closed by the
    /// worker, and counted (`peer_unsealed`, `peer_handshake_failed`).
    private func attack(_ workers: [WorkerProcess], with frames: [PeerMessage]) throws {
        for worker in workers {
            let before = worker.status()?.rejected ?? [:]
            #expect(try Outsider.sendPlain(frames, to: worker.address.port), "plain forged frames: connection closed")
            #expect(try Outsider.sendWithMadeUpProof(frames, to: worker.address.port), "made-up proof: connection closed")
            let counted = poll(within: .seconds(3)) { () -> Bool? in
                guard let now = worker.status()?.rejected else { return nil }
                let plain = now["peer_unsealed", default: 0] > before["peer_unsealed", default: 0]
                let sealed = now["peer_handshake_failed", default: 0] > before["peer_handshake_failed", default: 0]
                return plain && sealed ? true : nil
            }
            #expect(counted == true, "rejections counted by reason: \(worker.status()?.rejected ?? [:])")
        }
    }

    private func epoch(of service: String, at worker: WorkerProcess) throws -> UInt64 {
        try #require(worker.status()?.primaries(of: service).first?.epoch)
    }

    @Test("(a) a forged OK for a key a client waits on: the client gets the real answer, and so does a resubmission")
    func forgedAnswerForAWaitingClient() throws {
        let key = try SecretFiles.newClusterKey().path
        let workers = try keyedCluster("nap", count: 2, definition: "handler = \"sleep\"\n", key: key)
        defer { workers.forEach { $0.kill() } }
        let entry = workers[1]
        let epoch = try epoch(of: "nap", at: entry)
        let client = try RawSocket.connectTCP(to: entry.address.port)
        defer { close(client) }
        try Outsider.sendAll(Array("SUBMIT nap waiting-1 4\r\n1500\r\n".utf8), on: client)
        let forged = ["forged", ""].map { text in
            [epoch, epoch + 1, .max].map { forgedEpoch in
                PeerMessage.result(
                    epoch: forgedEpoch, service: try! ServiceName("nap"), key: try! JobKey("waiting-1"),
                    outcome: text.isEmpty ? .failed("forged failure") : .succeeded(Array(text.utf8)))
            }
        }.flatMap { $0 }
        try attack(workers, with: forged)
        shutdown(client, Int32(SHUT_WR))
        let answer = String(decoding: try Outsider.readUntilClosed(client, timeoutMs: 10_000), as: UTF8.self)
        #expect(answer == "OK waiting-1 13\r\nslept 1500 ms\r\n")
        let again = String(decoding: try RawSocket.exchangeTCP(
            Array("SUBMIT nap waiting-1 4\r\n1500\r\n".utf8), with: entry.address.port, timeoutMs: 10_000), as: UTF8.self)
        #expect(again == "OK waiting-1 13\r\nslept 1500 ms\r\n")
    }

    @Test("(b) a forged outcome for a key nobody submitted: submitting it later gets the real result")
    func forgedAnswerForAKeyNobodySubmitted() throws {
        let key = try SecretFiles.newClusterKey().path
        let workers = try keyedCluster("nap", count: 2, definition: "handler = \"sleep\"\n", key: key)
        defer { workers.forEach { $0.kill() } }
        let epoch = try epoch(of: "nap", at: workers[0])
        let poison = [epoch, .max].map {
            PeerMessage.result(
                epoch: $0, service: try! ServiceName("nap"), key: try! JobKey("poison-1"), outcome: .succeeded(Array("forged".utf8)))
        } + [PeerMessage.refused(service: try! ServiceName("nap"), key: try! JobKey("poison-1"), code: .busy, message: "forged")]
        try attack(workers, with: poison)
        for worker in workers {
            let answer = String(decoding: try RawSocket.exchangeTCP(
                Array("SUBMIT nap poison-1 2\r\n20\r\n".utf8), with: worker.address.port, timeoutMs: 10_000), as: UTF8.self)
            #expect(answer == "OK poison-1 11\r\nslept 20 ms\r\n")
        }
    }

    @Test("(c) forged forward, dispatch and running frames: no job runs for the outsider")
    func forgedJobFramesRunNothing() throws {
        let runs = FileManager.default.temporaryDirectory.appendingPathComponent("starling-runs-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: runs) }
        let key = try SecretFiles.newClusterKey().path
        let workers = try keyedCluster(
            "work", count: 3, definition: "command = [\"/bin/sh\", \"-c\", \"cat >> \(runs); echo >> \(runs); echo ran\"]\n", key: key)
        defer { workers.forEach { $0.kill() } }
        let epoch = try epoch(of: "work", at: workers[0])
        let service = try ServiceName("work")
        func ticket(_ n: Int) throws -> JobTicket {
            JobTicket(service: service, key: try JobKey("outsider-\(n)"), entry: Outsider.address, payload: Array("OUTSIDER-\(n)".utf8))
        }
        let frames: [PeerMessage] = [
            .forward(try ticket(1)),
            .dispatch(epoch: epoch, ticket: try ticket(2)),
            .dispatch(epoch: epoch + 1, ticket: try ticket(3)),
            .dispatch(epoch: .max, ticket: try ticket(4)),
            .running(epoch: epoch, service: service, keys: [try JobKey("outsider-5")]),
            .declined(epoch: epoch, service: service, key: try JobKey("outsider-6"), reason: "forged"),
        ]
        try attack(workers, with: frames)
        // A real job afterwards runs and is answered: the handler works, and it ran only this one.
        let answer = String(decoding: try RawSocket.exchangeTCP(
            Array("SUBMIT work real-1 6\r\nREAL-1\r\n".utf8), with: workers[1].address.port, timeoutMs: 10_000), as: UTF8.self)
        #expect(answer == "OK real-1 4\r\nran\n\r\n")
        let ran = (try? String(contentsOfFile: runs, encoding: .utf8)) ?? ""
        // Only the real job ran. Inside the cluster delivery is at-least-once (docs/PROTOCOL.md):
        // on a machine loaded enough that a worker is taken for dead for a moment, its job can
        // run again elsewhere, so a second run of it is reported with the logs, not failed.
        #expect(!ran.contains("OUTSIDER") && ran.contains("REAL-1"), "the handler ran: \(ran)")
        if ran.components(separatedBy: "REAL-1").count > 2 {
            let lines = workers.flatMap { $0.log.split(separator: "\n").filter { $0.contains("peer") || $0.contains("member") } }
            print("forged job frames: the real job ran more than once (\(ran.debugDescription)); the workers' peer and member lines:\n"
                + lines.suffix(30).joined(separator: "\n"))
        }
    }

    @Test("(d) a forged retire: every worker stays")
    func forgedRetireRetiresNobody() throws {
        let key = try SecretFiles.newClusterKey().path
        let workers = try keyedCluster("echo", count: 2, definition: "handler = \"echo\"\n", key: key)
        defer { workers.forEach { $0.kill() } }
        let before = try #require(awaitAgreement(workers, within: 5))
        try attack(workers, with: [.retire(reason: "forged by an outsider")])
        // A retired worker drains at once and leaves within a few intervals; none does.
        let left = poll(within: .seconds(1)) { () -> Bool? in
            workers.contains { !$0.process.isRunning || $0.log.contains("draining") } ? true : nil
        }
        #expect(left == nil, "a worker drained or exited")
        let after = try #require(awaitAgreement(workers, within: 5))
        #expect(after.mapValues(\.id) == before.mapValues(\.id))
        #expect(after.mapValues(\.epoch) == before.mapValues(\.epoch))
    }

    @Test("(e) a dispatch with epoch 2⁶⁴−1: 200 jobs afterwards are all answered")
    func forgedMaximalEpochStopsNothing() async throws {
        let key = try SecretFiles.newClusterKey().path
        let workers = try keyedCluster("echo", count: 3, definition: "handler = \"echo\"\nconcurrency = 4\n", key: key)
        defer { workers.forEach { $0.kill() } }
        let ticket = JobTicket(service: try ServiceName("echo"), key: try JobKey("fence-1"), entry: Outsider.address, payload: [1])
        try attack(workers, with: [.dispatch(epoch: .max, ticket: ticket)])
        let client = try StarlingClient(nodes: workers.map(\.address.description), configuration: .init())
        let results = try await submitConcurrently(200) { n in
            try await client.submit(service: "echo", payload: Array("job-\(n)".utf8), key: "after-\(n)")
        }
        await client.close()
        #expect(results.count == 200)
        let wrong = results.filter { n, answer in answer != .ok(Array("job-\(n)".utf8)) }
        #expect(wrong.isEmpty, "\(wrong.count) not answered with their payload, e.g. \(wrong.prefix(3))")
    }

    @Test("(f) sealed bytes a real worker sent, replayed on a new connection, are refused and counted")
    func capturedSealedBytesReplayedAreRefused() throws {
        let file = try SecretFiles.newClusterKey().path
        let keys = try ClusterKeys.load(path: file)
        let workers = try keyedCluster("echo", count: 2, definition: "handler = \"echo\"\n", key: file)
        defer { workers.forEach { $0.kill() } }
        let primaryID = try #require(workers[0].status()?.primaries(of: "echo").first?.id)
        let primary = try #require(workers.first { $0.id == primaryID })
        let other = try #require(workers.first { $0.id != primaryID })

        // The test, holding the key, forwards a job whose entry node is its own listening socket:
        // the primary then opens a sealed link to it to deliver the result, and its bytes are kept.
        let listener = try Outsider.listen()
        defer { close(listener.fd) }
        let entry = NodeAddress.ipv4(127, 0, 0, 1, port: listener.port)
        let ticket = JobTicket(service: try ServiceName("echo"), key: try JobKey("captured-1"), entry: entry, payload: Array("captured".utf8))
        let link = try Outsider.openSealed(
            to: primary.address.port, keys: keys, frames: [.hello(sender: Outsider.identity, address: entry), .forward(ticket)])
        defer { close(link) }

        let accepted = try #require(Outsider.accept(listener.fd, timeoutMs: 10_000), "the primary connects to the entry address")
        defer { close(accepted) }
        var captured: [UInt8] = []
        var acceptor = PeerAcceptorHandshake()
        var session: PeerSession?
        var plaintext: [UInt8] = []
        var decoder = PeerFrameDecoder()
        var result: PeerMessage?
        let deadline = ContinuousClock.now + .seconds(10)
        while result == nil, ContinuousClock.now < deadline {
            let bytes = try Outsider.receive(accepted, timeoutMs: 1_000)
            captured += bytes
            if session == nil {
                let step = try acceptor.receive(bytes, keys: keys)
                if !step.reply.isEmpty { try Outsider.sendAll(step.reply, on: accepted) }
                guard let established = step.session else { continue }
                session = established
                try session!.opener.open(step.rest, into: &plaintext)
            } else {
                try session!.opener.open(bytes, into: &plaintext)
            }
            decoder.append(plaintext)
            plaintext = []
            while let message = try decoder.next() {
                if case .result(_, _, let key, _) = message, key.value == "captured-1" { result = message }
            }
        }
        let delivered = try #require(result, "the result came over the sealed link")
        #expect(delivered == .result(epoch: try epoch(of: "echo", at: primary), service: ticket.service, key: ticket.key, outcome: .succeeded(Array("captured".utf8))))
        #expect(!captured.contains(Array("captured".utf8)), "the payload is encrypted on the wire")

        // Replayed whole on a new connection, to the primary and to the other worker: the acceptor's
        // new nonce makes the recorded proof worthless.
        for worker in [primary, other] {
            let before = worker.status()?.rejected ?? [:]
            #expect(try Outsider.replay(captured, to: worker.address.port), "replay: connection closed")
            let counted = poll(within: .seconds(3)) { () -> Bool? in
                let now = worker.status()?.rejected ?? [:]
                return now["peer_handshake_failed", default: 0] > before["peer_handshake_failed", default: 0] ? true : nil
            }
            #expect(counted == true, "\(worker.status()?.rejected ?? [:])")
        }
        // Its records after a genuine new handshake: they were sealed for another session.
        let records = Array(captured.dropFirst(PeerHandshake.openerHelloBytes + PeerHandshake.openerProofBytes))
        let before = other.status()?.rejected ?? [:]
        let fresh = try Outsider.openSealed(to: other.address.port, keys: keys, frames: [], then: records)
        defer { close(fresh) }
        #expect(try Outsider.isClosed(fresh, timeoutMs: 3_000), "replayed records: connection closed")
        let counted = poll(within: .seconds(3)) { () -> Bool? in
            let now = other.status()?.rejected ?? [:]
            return now["peer_record_unopened", default: 0] > before["peer_record_unopened", default: 0] ? true : nil
        }
        #expect(counted == true, "\(other.status()?.rejected ?? [:])")
    }

    @Test("(g) workers with another key, or none, exchange no jobs with a keyed worker")
    func workersWithOtherKeysExchangeNoJobs() throws {
        let runs = FileManager.default.temporaryDirectory.appendingPathComponent("starling-runs-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: runs) }
        let command = { (marker: String) in "command = [\"/bin/sh\", \"-c\", \"echo \(marker) >> \(runs); echo ran\"]\n" }
        let jobs = try WorkerProcess.jobsDirectory(service: "alpha", definition: command("alpha"))
        try Data(command("beta").utf8).write(to: URL(fileURLWithPath: jobs).appendingPathComponent("beta.toml"))
        try Data(command("gamma").utf8).write(to: URL(fileURLWithPath: jobs).appendingPathComponent("gamma.toml"))
        let one = try SecretFiles.newClusterKey().path, two = try SecretFiles.newClusterKey().path
        let alpha = try WorkerProcess(service: "alpha", extra: ["--jobs", jobs, "--cluster-key-file", one])
        defer { alpha.kill() }
        let beta = try WorkerProcess(service: "beta", join: [alpha.address], extra: ["--jobs", jobs, "--cluster-key-file", two])
        defer { beta.kill() }
        let gamma = try WorkerProcess(service: "gamma", join: [alpha.address], extra: ["--jobs", jobs])
        defer { gamma.kill() }
        // Each runs its own jobs.
        for worker in [alpha, beta, gamma] {
            let answer = try submit(worker.service, key: "own-\(worker.service)", at: worker, timeoutMs: 10_000)
            #expect(answer == "OK own-\(worker.service) 4\r\nran\n\r\n")
        }
        // A job entering at one and running at another: never, whichever way.
        let crossings = [(alpha, beta, "peer_handshake_failed"), (alpha, gamma, "peer_sealed_without_key"),
                         (gamma, alpha, "peer_unsealed"), (beta, alpha, "peer_handshake_failed")]
        for (entry, target, reason) in crossings {
            let knows = entry.status()?.members.contains { $0.id == target.id } ?? false
            let answer = try submit(target.service, key: "cross-\(entry.service)-\(target.service)", at: entry, timeoutMs: 2_500)
            #expect(!answer.hasPrefix("OK"), "\(target.service) at \(entry.service): \(answer)")
            // Where the other is in the record (heartbeats of this branch are plain), the link was
            // tried and refused; the side that counts is the one that saw the other's bytes.
            if knows {
                let counter = reason == "peer_handshake_failed" ? entry : target
                let counted = poll(within: .seconds(3)) { () -> Bool? in
                    (counter.status()?.rejected[reason] ?? 0) > 0 ? true : nil
                }
                #expect(counted == true, "\(reason) at \(counter.service): \(counter.status()?.rejected ?? [:])")
            }
        }
        let ran = (try? String(contentsOfFile: runs, encoding: .utf8)) ?? ""
        #expect(ran.split(separator: "\n").sorted() == ["alpha", "beta", "gamma"], "runs: \(ran)")
        #expect(gamma.log.contains("no cluster key") || !(gamma.status()?.members.contains { $0.id == alpha.id } ?? false))
    }

    @Test("key rotation A → \"B, A\" → \"B\" with SIGHUP: links proved with A are closed at the last step; every job answered")
    func rotationClosesLinksProvedWithARemovedKey() async throws {
        let (file, old) = try SecretFiles.newClusterKey()
        let new = ClusterKeys.generateLine()
        let workers = try keyedCluster("echo", count: 2, definition: "handler = \"echo\"\nconcurrency = 4\n", key: file)
        defer { workers.forEach { $0.kill() } }
        let before = try #require(awaitAgreement(workers, within: 5))
        // Jobs entering at both workers open links both ways, proved with A.
        let client = try StarlingClient(nodes: workers.map(\.address.description), configuration: .init())
        func submitAll(_ round: String) async throws {
            let results = try await submitConcurrently(100) { n in
                try await client.submit(service: "echo", payload: Array("\(round)-\(n)".utf8), key: "\(round)-\(n)")
            }
            let wrong = results.filter { n, answer in answer != .ok(Array("\(round)-\(n)".utf8)) }
            #expect(results.count == 100 && wrong.isEmpty, "\(round): \(wrong.prefix(3))")
        }
        try await submitAll("before")
        for (step, lines) in [[old, new], [new, old], [new]].enumerated() {
            try SecretFiles.rewrite(file, lines)
            for worker in workers { worker.signal(SIGHUP) }
            let reloaded = poll(within: .seconds(5)) { () -> Bool? in
                workers.allSatisfy { $0.log.components(separatedBy: "SIGHUP: reloaded").count - 1 == step + 1 } ? true : nil
            }
            #expect(reloaded == true)
            try await submitAll("step\(step + 1)")
        }
        let retired = poll(within: .seconds(3)) { () -> Bool? in
            workers.contains { ($0.status()?.rejected["peer_key_retired"] ?? 0) > 0 } ? true : nil
        }
        #expect(retired == true, "a link proved with the removed key was closed: \(workers.map { $0.status()?.rejected ?? [:] })")
        await client.close()
        let after = try #require(awaitAgreement(workers, within: 5))
        #expect(after.mapValues(\.id) == before.mapValues(\.id), "no primary change")
    }

    private func submit(_ service: String, key: String, at worker: WorkerProcess, timeoutMs: Int) throws -> String {
        String(decoding: try RawSocket.exchangeTCP(
            Array("SUBMIT \(service) \(key) 1\r\nx\r\n".utf8), with: worker.address.port, timeoutMs: timeoutMs), as: UTF8.self)
    }
}

/// A process on the network without the cluster key (or, for the replay test, with it), speaking
/// peer frames over plain sockets.
enum Outsider {
    static let identity = NodeID(high: 0x0000_0190_0000_0000, low: 42)
    static let address = NodeAddress.ipv4(127, 0, 0, 1, port: 9)

    /// hello + `frames`, plain; true when the worker closed the connection.
    static func sendPlain(_ frames: [PeerMessage], to port: UInt16) throws -> Bool {
        let fd = try RawSocket.connectTCP(to: port)
        defer { close(fd) }
        var bytes = PeerMessageCodec.encode(.hello(sender: identity, address: address))
        for frame in frames { PeerMessageCodec.encode(frame, into: &bytes) }
        try? sendAll(bytes, on: fd)
        return try isClosed(fd, timeoutMs: 3_000)
    }

    /// The sealed magic and a hello, the acceptor's proof read, then a made-up proof and `frames`
    /// (plain, as records cannot be made without the key); true when the worker closed the connection.
    static func sendWithMadeUpProof(_ frames: [PeerMessage], to port: UInt16) throws -> Bool {
        let fd = try RawSocket.connectTCP(to: port)
        defer { close(fd) }
        try sendAll(PeerOpenerHandshake().hello, on: fd)
        let proof = try receive(fd, exactly: PeerHandshake.acceptorProofBytes, timeoutMs: 3_000)
        guard proof.count == PeerHandshake.acceptorProofBytes else { return false }
        var bytes = PeerHandshake.randomNonce()
        PeerMessageCodec.encode(.hello(sender: identity, address: address), into: &bytes)
        for frame in frames { PeerMessageCodec.encode(frame, into: &bytes) }
        try? sendAll(bytes, on: fd)
        return try isClosed(fd, timeoutMs: 3_000)
    }

    /// Sends recorded bytes on a new connection, reading what comes back; true when closed.
    static func replay(_ bytes: [UInt8], to port: UInt16) throws -> Bool {
        let fd = try RawSocket.connectTCP(to: port)
        defer { close(fd) }
        try? sendAll(bytes, on: fd)
        return try isClosed(fd, timeoutMs: 3_000)
    }

    /// A genuine sealed link (with the key): `frames` in one record, then `then` as they are.
    static func openSealed(to port: UInt16, keys: ClusterKeys, frames: [PeerMessage], then raw: [UInt8] = []) throws -> Int32 {
        let fd = try RawSocket.connectTCP(to: port)
        var handshake = PeerOpenerHandshake()
        try sendAll(handshake.hello, on: fd)
        let reply = try receive(fd, exactly: PeerHandshake.acceptorProofBytes, timeoutMs: 3_000)
        guard var done = try handshake.receive(reply, keys: keys) else {
            close(fd)
            throw POSIXError(.EPROTO)
        }
        var plain: [UInt8] = []
        for frame in frames { PeerMessageCodec.encode(frame, into: &plain) }
        var bytes = done.proof
        done.session.sealer.seal(plain, into: &bytes)
        try sendAll(bytes + raw, on: fd)
        return fd
    }

    static func sendAll(_ bytes: [UInt8], on fd: Int32) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            sent += n
        }
    }

    /// Whether the other side closes (EOF or reset) within the timeout, discarding what it sends.
    static func isClosed(_ fd: Int32, timeoutMs: Int) throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            guard wait(fd, for: POLLIN, until: deadline) else { return false }
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
        return false
    }

    /// What arrives within `timeoutMs` (at least one byte unless closed or timed out).
    static func receive(_ fd: Int32, timeoutMs: Int) throws -> [UInt8] {
        guard wait(fd, for: POLLIN, until: ContinuousClock.now + .milliseconds(timeoutMs)) else { return [] }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = recv(fd, &chunk, chunk.count, 0)
        return n > 0 ? Array(chunk[..<n]) : []
    }

    static func receive(_ fd: Int32, exactly count: Int, timeoutMs: Int) throws -> [UInt8] {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: count)
        while bytes.count < count, wait(fd, for: POLLIN, until: deadline) {
            let n = recv(fd, &chunk, count - bytes.count, 0)
            guard n > 0 else { break }
            bytes += chunk[..<n]
        }
        return bytes
    }

    static func readUntilClosed(_ fd: Int32, timeoutMs: Int) throws -> [UInt8] {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while wait(fd, for: POLLIN, until: deadline) {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { break }
            bytes += chunk[..<n]
        }
        return bytes
    }

    /// A listening TCP socket on an ephemeral port of 127.0.0.1.
    static func listen() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && Glibc.listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    static func accept(_ listener: Int32, timeoutMs: Int) -> Int32? {
        guard wait(listener, for: POLLIN, until: ContinuousClock.now + .milliseconds(timeoutMs)) else { return nil }
        let fd = Glibc.accept(listener, nil, nil)
        return fd >= 0 ? fd : nil
    }

    /// poll(2) for `events` until the deadline.
    private static func wait(_ fd: Int32, for events: Int32, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            var descriptor = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = Glibc.poll(&descriptor, 1, ms)
            if ready > 0 { return true }
            if ready < 0, errno != EINTR { return false }
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for start in 0...(count - needle.count) where self[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}
