import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import Testing

/// `--join NAME:PORT`: the name is resolved by the worker (libuv's getaddrinfo, off the loop), again
/// every announce round; a name that does not resolve is logged, rate-limited, and the worker runs on.
@Suite struct JoinByNameProcessTests {
    @Test("--join localhost:PORT of another worker: the two see each other")
    func joinsByHostName() async throws {
        let seed = try WorkerProcess(service: "named")
        defer { seed.kill() }
        let joiner = try WorkerProcess(service: "named", extra: ["--join", "localhost:\(seed.address.port)"])
        defer { joiner.kill() }

        let both = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> Bool? in
            guard let mine = joiner.status(), let theirs = seed.status() else { return nil }
            let sees = mine.members.contains { $0.id == seed.id } && theirs.members.contains { $0.id == joiner.id }
            return sees ? true : nil
        }
        #expect(both == true, "joiner log: \(joiner.log.suffix(2000))")
        #expect(joiner.log.contains("--join localhost:\(seed.address.port) resolves to 127.0.0.1:\(seed.address.port)"),
                "\(joiner.log.suffix(2000))")
        #expect(!joiner.log.contains("no --join seed has answered"))
    }

    @Test("a name that does not resolve: logged once, retried, the worker runs on alone")
    func unresolvableNameIsLoggedNotFatal() async throws {
        // `.invalid` never resolves (RFC 2606); the lookup fails fast with EAI_NONAME.
        let lonely = try WorkerProcess(service: "unnamed", extra: ["--join", "seed.invalid:7946"])
        defer { lonely.kill() }
        let failure = "--join seed.invalid:7946 does not resolve"
        let logged = await pollAsync(within: .seconds(5), every: .milliseconds(50)) { () -> Bool? in
            lonely.log.contains(failure) ? true : nil
        }
        #expect(logged == true, "\(lonely.log.suffix(2000))")
        // Past the seed-silence warning (2 s) it still answers, alone, and has said it once:
        // lookups every 500 ms are not logged again within 30 s.
        let warned = await pollAsync(within: .seconds(10), every: .milliseconds(50)) { () -> Bool? in
            lonely.log.contains("no --join seed has answered (seed.invalid:7946 (does not resolve") ? true : nil
        }
        #expect(warned == true, "\(lonely.log.suffix(2000))")
        #expect(lonely.status()?.members.count == 1)
        #expect(lonely.status()?.selfStatus == .primary)
        #expect(lonely.log.components(separatedBy: failure).count - 1 == 1, "\(lonely.log.suffix(3000))")
    }
}
