import StarlingCore
import StarlingTestSupport
import Testing

@Suite struct ListeningLineTests {
    private let id = "0192f3a4-5b6c-7d8e-9f00-112233445566"

    @Test func parsesAWorkersLine() throws {
        let line = try #require(ListeningLine("starling worker \(id) listening on 127.0.0.1:40123"))
        #expect(line.kind == .worker)
        #expect(line.id == NodeID(id))
        #expect(line.address == NodeAddress.ipv4(127, 0, 0, 1, port: 40123))
        #expect(line.text == "starling worker \(id) listening on 127.0.0.1:40123")
    }

    @Test func parsesTheHTTPAddressWhenThereIsOne() throws {
        let text = "starling agent \(id) listening on 127.0.0.1:7946 http 127.0.0.1:9090"
        let line = try #require(ListeningLine(text))
        #expect(line.address.port == 7946)
        #expect(line.httpAddress == NodeAddress.ipv4(127, 0, 0, 1, port: 9090))
        #expect(line.text == text)
        #expect(try #require(ListeningLine("starling worker \(id) listening on 127.0.0.1:1")).httpAddress == nil)
    }

    @Test func parsesAnAgentsLineWithAnIPv6Address() throws {
        let line = try #require(ListeningLine("starling agent \(id) listening on [::1]:7946"))
        #expect(line.kind == .agent)
        #expect(line.address.port == 7946)
        #expect(line.address.hostBytes == Array(repeating: 0, count: 15) + [1])
    }

    @Test(arguments: [
        "",
        "starling worker",
        "starling client 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1:1",  // no such kind
        "starling worker 42 listening on 127.0.0.1:1",                                   // bad id
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1",   // no port
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on host:1",      // not numeric
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1:70000",
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 bound to 127.0.0.1:1",
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1:1 extra",
        "starling worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1:1 web 127.0.0.1:2",
        "starling  worker 0192f3a4-5b6c-7d8e-9f00-112233445566 listening on 127.0.0.1:1",
    ])
    func rejectsEveryOtherLine(_ text: String) {
        #expect(ListeningLine(text) == nil)
    }
}
