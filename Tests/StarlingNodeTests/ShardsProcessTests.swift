import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import Testing

/// `SHARDS` answered by real processes over plain sockets (docs/PROTOCOL.md, "Key shards"). A lone
/// worker is its own primary without standbys and may hold no shards, so the answer's form and
/// service are asserted, not its set.
@Suite("SHARDS", .serialized)
struct ShardsProcessTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Whether `line` is `SHARDS <service> <16 lowercase hex digits>\r\n`, and decodes as such.
    private func isShardsAnswer(_ line: String, of service: String) -> Bool {
        // In bytes: a `String` counts "\r\n" as one character.
        let line = bytes(line)
        let prefix = bytes("SHARDS \(service) ")
        guard line.starts(with: prefix), line.suffix(2) == [0x0D, 0x0A] else { return false }
        let digits = line[prefix.count..<(line.count - 2)]
        guard digits.count == 16, digits.allSatisfy({ bytes("0123456789abcdef").contains($0) }) else { return false }
        var decoder = ClientResponseDecoder()
        decoder.append(line)
        guard case .response(.shards(let answered, let shards)) = decoder.next() else { return false }
        return answered.value == service && shards.hex == text(Array(digits))
    }

    @Test("a worker answers SHARDS with its service type and 16 hex digits, on a connection that goes on")
    func workerAnswers() throws {
        let worker = try WorkerProcess(service: "echo")
        defer { worker.kill() }
        let answer = text(try RawSocket.exchangeTCP(bytes("SHARDS\r\nPING\r\nSHARDS\r\n"), with: worker.address.port,
                                                    timeoutMs: 5_000))
        let lines = answer.split(separator: "\r\n").map { String($0) + "\r\n" }
        #expect(lines.count == 3, "\(answer)")
        guard lines.count == 3 else { return }
        #expect(isShardsAnswer(lines[0], of: "echo"), "\(answer)")
        #expect(lines[1] == "PONG\r\n")
        #expect(isShardsAnswer(lines[2], of: "echo"), "\(answer)")
        let bad = text(try RawSocket.exchangeTCP(bytes("SHARDS echo\r\n"), with: worker.address.port))
        #expect(bad == "ERR - BAD_REQUEST SHARDS takes no arguments\r\n")
    }

    @Test("with a client token file, SHARDS needs AUTH like PING and STATUS")
    func needsAuthentication() throws {
        let token = "tok-\(UUID().uuidString)"
        let file = try SecretFiles.write([token])
        defer { try? FileManager.default.removeItem(atPath: file) }
        let worker = try WorkerProcess(service: "resize", extra: ["--client-token-file", file])
        defer { worker.kill() }
        let port = worker.address.port
        let refused = text(try RawSocket.exchangeTCP(bytes("SHARDS\r\n"), with: port, timeoutMs: 5_000))
        #expect(refused.hasPrefix("ERR - UNAUTHORIZED "), "\(refused)")
        let welcomed = text(try RawSocket.exchangeTCP(bytes("AUTH \(token)\r\nSHARDS\r\n"), with: port, timeoutMs: 5_000))
        #expect(welcomed.hasPrefix("WELCOME\r\n"), "\(welcomed)")
        #expect(isShardsAnswer(String(welcomed.dropFirst("WELCOME\r\n".count)), of: "resize"), "\(welcomed)")
    }

    @Test("an agent answers SHARDS agent with no shards")
    func agentHoldsNone() throws {
        let agent = try AgentProcess(jobs: try WorkerProcess.jobsDirectory(service: "echo", definition: "handler = \"echo\"\n"))
        defer { agent.stopAndReap() }
        let answer = text(try RawSocket.exchangeTCP(bytes("SHARDS\r\n"), with: agent.address.port, timeoutMs: 5_000))
        #expect(answer == "SHARDS agent 0000000000000000\r\n")
    }
}
