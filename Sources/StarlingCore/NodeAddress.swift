/// Where a process listens: its UDP heartbeats and TCP jobs share one port.
/// Pure data: the shell converts to and from socket addresses.
public struct NodeAddress: Hashable, Sendable, Comparable {
    public enum Host: Hashable, Sendable {
        /// Four bytes in network order, e.g. 127.0.0.1 is `0x7F00_0001`.
        case ipv4(UInt32)
        /// Sixteen bytes in network order, as two big-endian halves.
        case ipv6(high: UInt64, low: UInt64)
    }

    public let host: Host
    public let port: UInt16

    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> NodeAddress {
        NodeAddress(host: .ipv4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)), port: port)
    }

    /// The host's bytes in network order: 4 for IPv4, 16 for IPv6.
    public var hostBytes: [UInt8] {
        switch host {
        case .ipv4(let v): return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
        case .ipv6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// Builds an address from 4 or 16 bytes in network order; nil for any other length.
    public init?(hostBytes bytes: some Collection<UInt8>, port: UInt16) {
        let bytes = Array(bytes)
        func word(_ slice: ArraySlice<UInt8>) -> UInt64 { slice.reduce(0) { $0 << 8 | UInt64($1) } }
        switch bytes.count {
        case 4: self.init(host: .ipv4(UInt32(word(bytes[0..<4]))), port: port)
        case 16: self.init(host: .ipv6(high: word(bytes[0..<8]), low: word(bytes[8..<16])), port: port)
        default: return nil
        }
    }

    /// IPv4 before IPv6, then the host's bytes in order, then the port. Compared as numbers, which
    /// order as their big-endian bytes do: the router breaks ties by address for every job.
    public static func < (lhs: NodeAddress, rhs: NodeAddress) -> Bool {
        switch (lhs.host, rhs.host) {
        case (.ipv4, .ipv6): return true
        case (.ipv6, .ipv4): return false
        case (.ipv4(let l), .ipv4(let r)) where l != r: return l < r
        case (.ipv6(let lHigh, let lLow), .ipv6(let rHigh, let rLow)) where (lHigh, lLow) != (rHigh, rLow):
            return (lHigh, lLow) < (rHigh, rLow)
        default: return lhs.port < rhs.port
        }
    }
}

extension NodeAddress: CustomStringConvertible {
    /// `127.0.0.1:7946`, or `[0:0:0:0:0:0:0:1]:7946` for IPv6 (full form, no compression).
    public var description: String {
        switch host {
        case .ipv4:
            return hostBytes.map(String.init).joined(separator: ".") + ":\(port)"
        case .ipv6:
            let b = hostBytes
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
            return "[" + groups.joined(separator: ":") + "]:\(port)"
        }
    }
}
