import StarlingUV
import Testing

@Suite struct SocketAddressTests {
    @Test(arguments: [
        ("127.0.0.1:80", "127.0.0.1:80", [127, 0, 0, 1] as [UInt8]),
        ("0.0.0.0:0", "0.0.0.0:0", [0, 0, 0, 0]),
        ("localhost:7000", "127.0.0.1:7000", [127, 0, 0, 1]),
        ("[::1]:65535", "[::1]:65535", [UInt8](repeating: 0, count: 15) + [1]),
        ("[2001:db8::ff]:9", "[2001:db8::ff]:9", [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0xff]),
    ])
    func parsesGoodInput(text: String, canonical: String, bytes: [UInt8]) throws {
        let address = try SocketAddress(parsing: text)
        #expect(address.description == canonical)
        #expect(address.hostBytes == bytes)
        #expect(try SocketAddress(parsing: address.description) == address)
        #expect(try SocketAddress(hostBytes: address.hostBytes, port: address.port) == address)
    }

    @Test(arguments: [
        "", ":", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+1",
        "127.0.0.1:8a", "127.0.0.1: 80", " 127.0.0.1:80", "300.1.1.1:80", "1.2.3:80", "example.com:80",
        "::1:80", "[::1]80", "[::1]:", "[::1", "[]:80", "[127.0.0.1]:80x", "[fe80::1%lo]:80", "[::1]:99999",
        "127.0.0.1:٣",
    ])
    func rejectsBadInput(text: String) {
        #expect(throws: UVError.self) { try SocketAddress(parsing: text) }
    }

    @Test func rejectsWrongHostByteCounts() {
        for count in [0, 3, 5, 15, 17] {
            #expect(throws: UVError.self) {
                try SocketAddress(hostBytes: [UInt8](repeating: 1, count: count), port: 1)
            }
        }
    }

    @Test func errorsNameTheFailure() {
        let error = caught { () throws(UVError) in _ = try SocketAddress(ip: "not-an-ip", port: 1) }
        #expect(error?.name == "EINVAL")
        #expect(error?.description.contains("not-an-ip") == true)
    }

    @Test func isHashable() throws {
        let a = try SocketAddress(ip: "10.0.0.1", port: 1)
        let b = try SocketAddress(parsing: "10.0.0.1:1")
        let c = try SocketAddress(ip: "10.0.0.1", port: 2)
        #expect(Set([a, b, c]).count == 2)
    }
}
