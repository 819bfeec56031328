import StarlingCore

/// One `--join` seed as the operator wrote it (docs/HANDBOOK.md, "seed"): a numeric address, or a
/// host name that the worker resolves again every announce round (`SeedResolver`), so that a name
/// whose addresses change or grow (a Kubernetes headless service) keeps working.
public enum JoinTarget: Hashable, Sendable, CustomStringConvertible {
    case address(NodeAddress)
    case name(String, port: UInt16)

    /// The longest host name, without a final dot (RFC 1035).
    public static let maxNameLength = 253

    /// Why `--join` text was refused; the description is meant for an operator.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPort(String)
        case emptyHost(String)
        case badPort(String)
        case portZero(String)
        case nameTooLong(Int)
        case badName(String, why: String)
        case badAddress(NodeAddress.ParseError)
        case notIPv6(String)

        public var description: String {
            switch self {
            case .missingPort(let text):
                "'\(text)' is not HOST:PORT (e.g. 10.0.0.5:7946, [fd00::5]:7946 or starling-0.starling:7946)"
            case .emptyHost(let text): "'\(text)' has no host before the port"
            case .badPort(let port): "port '\(port)' is not a number in 1–65535"
            case .portZero(let text): "'\(text)': port 0 cannot be joined"
            case .nameTooLong(let length): "a host name has at most \(JoinTarget.maxNameLength) characters, got \(length)"
            case .badName(let name, let why): "'\(name)' is not a host name: \(why)"
            case .badAddress(let error): "\(error)"
            case .notIPv6(let host): "'[\(host)]': brackets hold a numeric IPv6 address, not a name"
            }
        }
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `NAME:PORT`. A host of digits and dots only is an IPv4
    /// address and must be a valid one; anything else with a letter is a name of 1–63-character
    /// labels of letters, digits and hyphens (no hyphen first or last), at most 253 characters
    /// (one final dot allowed). `localhost` is a name like any other.
    public init(parsing text: String) throws(ParseError) {
        guard let split = HostAndPort(text) else { throw .missingPort(text) }
        guard !split.host.isEmpty else { throw .emptyHost(text) }
        guard let port = split.portNumber else { throw .badPort(String(split.port)) }
        guard port != 0 else { throw .portZero(text) }
        let host = String(split.host)
        // Brackets hold an IPv6 address, never a name.
        if split.isBracketed && !host.contains(":") { throw .notIPv6(host) }
        if split.isBracketed || host.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) }) {
            do {
                self = .address(NodeAddress(host: try NodeAddress.parseHost(host), port: port))
            } catch {
                throw .badAddress(error)
            }
            return
        }
        try Self.checkName(host)
        self = .name(host, port: port)
    }

    /// Checks the syntax of a host name (RFC 1123 labels).
    private static func checkName(_ name: String) throws(ParseError) {
        let bare = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard bare.utf8.count <= maxNameLength else { throw .nameTooLong(bare.utf8.count) }
        for label in bare.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { throw .badName(name, why: "an empty label") }
            guard label.utf8.count <= 63 else { throw .badName(name, why: "a label of more than 63 characters") }
            guard label.utf8.allSatisfy({ Self.isLetterOrDigit($0) || $0 == UInt8(ascii: "-") }) else {
                throw .badName(name, why: "only letters, digits, '-' and '.' are allowed")
            }
            guard label.first != "-", label.last != "-" else {
                throw .badName(name, why: "a label starts or ends with '-'")
            }
        }
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// As the operator wrote it, in canonical form: `10.0.0.5:7946`, `[0:0:…:1]:7946`, `name:7946`.
    public var description: String {
        switch self {
        case .address(let address): "\(address)"
        case .name(let name, let port): "\(name):\(port)"
        }
    }

    /// The numeric address, when this is one.
    public var address: NodeAddress? {
        if case .address(let address) = self { return address }
        return nil
    }
}
