import StarlingCore
import StarlingNode
import Testing

@Suite("HOST:PORT parsing for --join, --host and --node")
struct NodeAddressParsingTests {
    @Test func parsesNumericAddresses() throws {
        #expect(try NodeAddress(parsing: "127.0.0.1:7946") == .ipv4(127, 0, 0, 1, port: 7946))
        #expect(try NodeAddress(parsing: "localhost:1") == .ipv4(127, 0, 0, 1, port: 1))
        #expect(try NodeAddress(parsing: "10.1.2.3:0") == .ipv4(10, 1, 2, 3, port: 0))
        let v6 = try NodeAddress(parsing: "[::1]:7946")
        #expect(v6.host == .ipv6(high: 0, low: 1) && v6.port == 7946)
        #expect(v6.description == "[0:0:0:0:0:0:0:1]:7946")
        // What NodeAddress writes, it reads back.
        #expect(try NodeAddress(parsing: v6.description) == v6)
    }

    @Test(arguments: [
        "", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8x",
        "example.com:80", "::1:80", "[::1]80", "[::1", "1.2.3.4.5:80", "256.0.0.1:80", "127.0.0.1:0080000",
        "fe80::1%eth0:80", "[fe80::1%eth0]:80",
    ])
    func rejectsMalformedAddresses(_ text: String) {
        #expect(throws: NodeAddress.ParseError.self) { try NodeAddress(parsing: text) }
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: NodeAddress.ParseError.missingPort("nohost")) { try NodeAddress(parsing: "nohost") }
        #expect(throws: NodeAddress.ParseError.badPort("99999")) { try NodeAddress(parsing: "1.2.3.4:99999") }
        #expect(throws: NodeAddress.ParseError.badHost("example.com")) { try NodeAddress(parsing: "example.com:80") }
    }

    @Test func workerSettingsValidateTiming() throws {
        let service = try ServiceName("echo")
        try WorkerSettings(service: service).validate()
        #expect(throws: MembershipConfigError.self) { try WorkerSettings(service: service, intervalMs: 5).validate() }
        #expect(throws: MembershipConfigError.self) {
            try WorkerSettings(service: service, intervalMs: 100, suspectAfterMs: 150).validate()
        }
        #expect(throws: MembershipConfigError.self) {
            try WorkerSettings(service: service, connections: ConnectionLimits(maxConnections: 0)).validate()
        }
        #expect(throws: MembershipConfigError.self) {
            try WorkerSettings(service: service, connections: ConnectionLimits(routeTimeoutMs: 0)).validate()
        }
    }
}
