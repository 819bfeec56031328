import StarlingCore
import Testing

/// The router breaks ties between equally loaded executors by address, so the order must be the
/// same everywhere and the one the wire bytes give: IPv4 before IPv6, host bytes, then port.
@Suite struct NodeAddressOrderTests {
    @Test func addressesOrderAsTheirHostBytesThenPort() {
        let addresses: [NodeAddress] = [
            .ipv4(127, 0, 0, 1, port: 7946), .ipv4(127, 0, 0, 1, port: 80), .ipv4(10, 255, 0, 1, port: 1),
            .ipv4(128, 0, 0, 0, port: 1), .ipv4(127, 0, 1, 0, port: 1),
            NodeAddress(host: .ipv6(high: 0, low: 1), port: 7946), NodeAddress(host: .ipv6(high: 0, low: 1), port: 1),
            NodeAddress(host: .ipv6(high: 1 << 63, low: 0), port: 1), NodeAddress(host: .ipv6(high: 1, low: 0), port: 1),
        ]
        func byBytes(_ l: NodeAddress, _ r: NodeAddress) -> Bool {
            let (lb, rb) = (l.hostBytes, r.hostBytes)
            if lb.count != rb.count { return lb.count < rb.count }
            return lb != rb ? lb.lexicographicallyPrecedes(rb) : l.port < r.port
        }
        for l in addresses {
            for r in addresses {
                #expect((l < r) == byBytes(l, r), "\(l) < \(r)")
            }
        }
    }
}
