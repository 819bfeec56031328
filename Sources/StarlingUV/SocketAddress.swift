import CLibUV

/// A numeric IPv4 or IPv6 address and port. A plain value: no DNS, no scope IDs.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The host address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    public let hostBytes: [UInt8]
    /// The port in host byte order.
    public let port: UInt16

    /// Whether this is an IPv6 address.
    public var isIPv6: Bool { hostBytes.count == 16 }

    /// An address from raw host bytes (4 or 16, network order); other lengths throw `EINVAL`.
    public init(hostBytes: [UInt8], port: UInt16) throws(UVError) {
        try uvCheck(hostBytes.count == 4 || hostBytes.count == 16 ? 0 : UVCode.invalid,
                    "SocketAddress: \(hostBytes.count) host bytes")
        self.hostBytes = hostBytes
        self.port = port
    }

    /// An address from a numeric IP (`"127.0.0.1"`, `"::1"`); `"localhost"` means 127.0.0.1.
    public init(ip: String, port: UInt16) throws(UVError) {
        let text = ip == "localhost" ? "127.0.0.1" : ip
        // A scope suffix would be silently dropped, so refuse it instead.
        try uvCheck(text.contains("%") ? UVCode.invalid : 0, "SocketAddress: scoped address \(ip)")
        if text.contains(":") {
            var address = sockaddr_in6()
            try uvCheck(uv_ip6_addr(text, 0, &address), "uv_ip6_addr \(ip)")
            self.hostBytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
        } else {
            var address = sockaddr_in()
            try uvCheck(uv_ip4_addr(text, 0, &address), "uv_ip4_addr \(ip)")
            self.hostBytes = withUnsafeBytes(of: address.sin_addr) { Array($0) }
        }
        self.port = port
    }

    /// An address from `"host:port"` or `"[v6]:port"`, e.g. `"127.0.0.1:7000"`, `"[::1]:7000"`.
    public init(parsing text: String) throws(UVError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":")
            else { try Self.reject(text) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { try Self.reject(text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            // An unbracketed IPv6 address is ambiguous ("::1:80"), so require brackets.
            if host.contains(":") { try Self.reject(text) }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = UInt16(portText)
        else { try Self.reject(text) }
        try self.init(ip: String(host), port: port)
    }

    private static func reject(_ text: String) throws(UVError) -> Never {
        try uvFail(UVCode.invalid, "SocketAddress: cannot parse \"\(text)\"")
    }

    /// `"a.b.c.d:port"` or `"[v6]:port"`, formatted by `uv_ip4_name` / `uv_ip6_name`.
    public var description: String {
        var name = [CChar](repeating: 0, count: 64)
        withSocketAddress { address in
            if isIPv6 {
                address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    _ = uv_ip6_name($0, &name, name.count)
                }
            } else {
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    _ = uv_ip4_name($0, &name, name.count)
                }
            }
        }
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Calls `body` with a `sockaddr` for this address that is valid only during the call.
    func withSocketAddress<R, E: Error>(_ body: (UnsafePointer<sockaddr>) throws(E) -> R) throws(E) -> R {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            if isIPv6 {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: hostBytes) }
                withUnsafeBytes(of: address) { raw.copyMemory(from: $0) }
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: hostBytes) }
                withUnsafeBytes(of: address) { raw.copyMemory(from: $0) }
            }
        }
        return try withUnsafePointer(to: &storage) { storage throws(E) -> R in
            try storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(E) -> R in
                try body(address)
            }
        }
    }

    /// The address in a `sockaddr` filled in by libuv; other families throw `EINVAL`.
    init(_ address: UnsafePointer<sockaddr>, _ operation: @autoclosure () -> String) throws(UVError) {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let v4 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self)
            try self.init(hostBytes: withUnsafeBytes(of: v4.sin_addr) { Array($0) },
                          port: UInt16(bigEndian: v4.sin_port))
        case AF_INET6:
            let v6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self)
            try self.init(hostBytes: withUnsafeBytes(of: v6.sin6_addr) { Array($0) },
                          port: UInt16(bigEndian: v6.sin6_port))
        default:
            try uvFail(UVCode.invalid, "\(operation()): address family \(address.pointee.sa_family)")
        }
    }

    /// Reads an address with a `getsockname`-style libuv call.
    static func query(
        _ operation: String,
        _ call: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<Int32>) -> Int32
    ) throws(UVError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let code = withUnsafeMutablePointer(to: &storage) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, &length) }
        }
        try uvCheck(code, operation)
        return try withUnsafePointer(to: &storage) { storage throws(UVError) -> SocketAddress in
            try storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(UVError) in
                try SocketAddress(address, operation)
            }
        }
    }
}
