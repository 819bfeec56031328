/// A TCP socket in the LISTEN state, as `/proc/net/tcp` shows it (IPv4, Linux only).
public struct ListeningSocket: Hashable, Sendable {
    /// The local address, dotted (`127.0.0.1`, or `0.0.0.0` for any).
    public var host: String
    public var port: UInt16
    /// The socket's inode: the `socket:[INODE]` of a process's `/proc/PID/fd`.
    public var inode: UInt64

    public init(host: String, port: UInt16, inode: UInt64) {
        self.host = host
        self.port = port
        self.inode = inode
    }

    /// Every listening IPv4 TCP socket of this machine (of this network namespace).
    public static func all() -> [ListeningSocket] {
        ProcFile.read("/proc/net/tcp").map(parse(table:)) ?? []
    }

    /// The socket listening on `port` of 127.0.0.1 or of every address, if any.
    public static func onLoopback(port: UInt16) -> ListeningSocket? {
        all().first { $0.port == port && ($0.host == "127.0.0.1" || $0.host == "0.0.0.0") }
    }

    /// The listening sockets of a `/proc/net/tcp` text.
    public static func parse(table: String) -> [ListeningSocket] {
        table.split(separator: "\n").dropFirst().compactMap { line in
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let fields = line.split(separator: " ")
            guard fields.count > 9, fields[3] == "0A" else { return nil }  // 0A: LISTEN
            let local = fields[1].split(separator: ":")
            guard local.count == 2, let address = UInt32(local[0], radix: 16), let port = UInt16(local[1], radix: 16),
                  let inode = UInt64(fields[9])
            else { return nil }
            // The address is the network-order word printed as a host-order (little-endian) number.
            let host = [address & 0xFF, address >> 8 & 0xFF, address >> 16 & 0xFF, address >> 24].map(String.init)
                .joined(separator: ".")
            return ListeningSocket(host: host, port: port, inode: inode)
        }
    }
}
