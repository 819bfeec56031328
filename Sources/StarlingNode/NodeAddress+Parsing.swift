import StarlingCore
import StarlingUV

extension NodeAddress {
    /// Why `HOST:PORT` text was not an address; the description is meant for an operator.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPort(String)
        case badHost(String)
        case badPort(String)

        public var description: String {
            switch self {
            case .missingPort(let text): "'\(text)' is not HOST:PORT (e.g. 127.0.0.1:7946 or [::1]:7946)"
            case .badHost(let host): "'\(host)' is not a numeric IPv4 or IPv6 address (or 'localhost')"
            case .badPort(let port): "port '\(port)' is not a number in 0–65535"
            }
        }
    }

    /// Parses `HOST:PORT`: a dotted IPv4 address, `[IPv6]`, or `localhost` (127.0.0.1).
    /// No name resolution: that would block, and a seed list should be explicit.
    public init(parsing text: String) throws(ParseError) {
        guard let split = HostAndPort(text) else { throw .missingPort(text) }
        guard let port = split.portNumber else { throw .badPort(String(split.port)) }
        self.init(host: try Self.parseHost(String(split.host)), port: port)
    }

    /// Parses a bare numeric host (IPv4, IPv6 with or without brackets) or `localhost`.
    public static func parseHost(_ text: String) throws(ParseError) -> Host {
        var bare = text
        if bare.hasPrefix("["), bare.hasSuffix("]") { bare = String(bare.dropFirst().dropLast()) }
        guard !bare.isEmpty, bare.utf8.count <= 64, let socket = try? SocketAddress(ip: bare, port: 0) else {
            throw .badHost(text)
        }
        return NodeAddress(socket).host
    }

    /// The address as libuv takes it.
    public var socketAddress: SocketAddress {
        // NodeAddress only ever holds 4 or 16 host bytes, which SocketAddress accepts.
        try! SocketAddress(hostBytes: hostBytes, port: port)
    }

    /// The address libuv reported (a bound or peer address).
    public init(_ socket: SocketAddress) {
        // SocketAddress only ever holds 4 or 16 host bytes.
        self = NodeAddress(hostBytes: socket.hostBytes, port: socket.port)!
    }
}

/// `HOST:PORT` or `[HOST]:PORT` cut at the port's colon, the brackets dropped: what `--join`,
/// `--http` and the like take apart before they read the host.
struct HostAndPort {
    let host: Substring
    let port: Substring
    /// Whether the host was in brackets (an IPv6 address).
    let isBracketed: Bool

    /// nil when there is no port, or when a host without brackets holds a colon ("::1:80" is
    /// ambiguous: IPv6 addresses need brackets).
    init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
            isBracketed = true
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            isBracketed = false
        }
    }

    /// The port, when it is 1–5 ASCII digits of at most 65535.
    var portNumber: UInt16? {
        guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt16(port)
    }
}
