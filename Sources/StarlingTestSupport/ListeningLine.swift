import StarlingCore
import StarlingUV

/// The line a `starling worker` or a `starling up` agent writes to stdout once it is bound:
/// `starling <worker|agent> <id> listening on HOST:PORT`, followed by ` http HOST:PORT` when it
/// serves `--http` (see the README).
public struct ListeningLine: Hashable, Sendable {
    /// Which command wrote it.
    public enum Kind: String, Sendable {
        case worker
        case agent
    }

    public let kind: Kind
    public let id: NodeID
    public let address: NodeAddress
    /// Where its `--http` endpoints listen, when it serves them.
    public let httpAddress: NodeAddress?

    /// Parses one stdout line (without its newline); nil for any other line.
    public init?(_ line: String) {
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 6 || words.count == 8, words[0] == "starling", let kind = Kind(rawValue: String(words[1])),
              let id = NodeID(words[2]), words[3] == "listening", words[4] == "on",
              let address = Self.address(words[5])
        else { return nil }
        if words.count == 8 {
            guard words[6] == "http", let http = Self.address(words[7]) else { return nil }
            httpAddress = http
        } else {
            httpAddress = nil
        }
        (self.kind, self.id, self.address) = (kind, id, address)
    }

    /// `HOST:PORT` as a process writes its own address: numeric IPv4, or IPv6 in brackets.
    private static func address(_ text: Substring) -> NodeAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, let socket = try? SocketAddress(ip: String(host), port: port) else { return nil }
        return NodeAddress(hostBytes: socket.hostBytes, port: port)
    }

    /// The line as the process writes it.
    public var text: String {
        "starling \(kind.rawValue) \(id) listening on \(address)" + (httpAddress.map { " http \($0)" } ?? "")
    }
}
