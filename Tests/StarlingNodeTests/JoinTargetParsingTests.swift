import StarlingCore
import StarlingNode
import Testing

@Suite("--join parsing: numeric addresses and host names")
struct JoinTargetParsingTests {
    @Test func numericAddressesStayNumbers() throws {
        #expect(try JoinTarget(parsing: "127.0.0.1:7946") == .address(.ipv4(127, 0, 0, 1, port: 7946)))
        #expect(try JoinTarget(parsing: "[::1]:7946") == .address(NodeAddress(host: .ipv6(high: 0, low: 1), port: 7946)))
        #expect(try JoinTarget(parsing: "[::1]:7946").address?.port == 7946)
    }

    @Test func namesAreKeptToResolveLater() throws {
        #expect(try JoinTarget(parsing: "localhost:7946") == .name("localhost", port: 7946))
        let pod = "starling-0.starling.default.svc.cluster.local"
        #expect(try JoinTarget(parsing: "\(pod):7946") == .name(pod, port: 7946))
        #expect(try JoinTarget(parsing: "\(pod).:1") == .name("\(pod).", port: 1), "a final dot is allowed")
        #expect(try JoinTarget(parsing: "Node-1.Example:65535").description == "Node-1.Example:65535")
        #expect(try JoinTarget(parsing: "localhost:7946").address == nil)
        // 253 characters: the longest name.
        let longest = Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".").dropLast(2)
        #expect(longest.count == 253)
        #expect(try JoinTarget(parsing: "\(longest):80") == .name(String(longest), port: 80))
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: JoinTarget.ParseError.emptyHost(":7946")) { try JoinTarget(parsing: ":7946") }
        #expect(throws: JoinTarget.ParseError.emptyHost("[]:7946")) { try JoinTarget(parsing: "[]:7946") }
        #expect(throws: JoinTarget.ParseError.missingPort("seed")) { try JoinTarget(parsing: "seed") }
        #expect(throws: JoinTarget.ParseError.missingPort("::1:80")) { try JoinTarget(parsing: "::1:80") }
        #expect(throws: JoinTarget.ParseError.badPort("")) { try JoinTarget(parsing: "seed:") }
        #expect(throws: JoinTarget.ParseError.badPort("65536")) { try JoinTarget(parsing: "seed:65536") }
        #expect(throws: JoinTarget.ParseError.badPort("80x")) { try JoinTarget(parsing: "seed:80x") }
        #expect(throws: JoinTarget.ParseError.badPort("-1")) { try JoinTarget(parsing: "seed:-1") }
        #expect(throws: JoinTarget.ParseError.portZero("seed:0")) { try JoinTarget(parsing: "seed:0") }
        let tooLong = String(repeating: "a.", count: 127)  // 254 characters with its final dot: 253 without
        #expect(throws: Never.self) { try JoinTarget(parsing: "\(tooLong):80") }
        #expect(throws: JoinTarget.ParseError.nameTooLong(256)) { try JoinTarget(parsing: "a\(tooLong)b:80") }
        #expect(throws: JoinTarget.ParseError.badAddress(.badHost("256.0.0.1"))) { try JoinTarget(parsing: "256.0.0.1:80") }
        #expect(throws: JoinTarget.ParseError.notIPv6("localhost")) { try JoinTarget(parsing: "[localhost]:80") }
    }

    @Test(arguments: [
        "-seed:80", "seed-:80", "se_ed:80", "se ed:80", "a..b:80", ".seed:80", "séed:80", "seed/x:80",
        "\(String(repeating: "a", count: 64)).example:80", "[localhost]:80", "[fe80::1%eth0]:80", "1.2.3.4.5:80",
        "[::1]80", "[::1", "seed:+80",
    ])
    func rejectsWhatIsNeitherANumberNorAName(_ text: String) {
        #expect(throws: JoinTarget.ParseError.self) { try JoinTarget(parsing: text) }
    }

    @Test func errorsReadWell() {
        let error = JoinTarget.ParseError.nameTooLong(300)
        #expect("\(error)" == "a host name has at most 253 characters, got 300")
        #expect("\(JoinTarget.ParseError.portZero("seed:0"))".contains("port 0 cannot be joined"))
    }
}
