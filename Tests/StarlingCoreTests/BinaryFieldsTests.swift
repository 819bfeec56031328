import Testing
import StarlingCore

/// The shared binary reader and writer, through the two codecs' error types.
@Suite struct BinaryFieldsTests {
    private typealias PeerReader = BinaryReader<PeerDecodingError>
    private typealias HeartbeatReader = BinaryReader<HeartbeatDecodingError>

    @Test func integersAreBigEndian() throws {
        var out: [UInt8] = []
        out.appendBigEndian(UInt16(0x0102))
        out.appendBigEndian(UInt32(0x0304_0506))
        out.appendBigEndian(UInt64(0x0708_090A_0B0C_0D0E))
        out.appendBigEndian(UInt8(0xFF))
        #expect(out == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xFF])
        var reader = PeerReader(out[...])
        #expect(try reader.integer(UInt16.self, "a") == 0x0102)
        #expect(try reader.integer(UInt32.self, "b") == 0x0304_0506)
        #expect(try reader.integer(UInt64.self, "c") == 0x0708_090A_0B0C_0D0E)
        #expect(try reader.byte("d") == 0xFF)
        #expect(reader.remaining == 0)
        #expect(throws: PeerDecodingError.truncated(field: "e")) { try reader.byte("e") }
    }

    @Test func readsWithinItsSliceOnly() throws {
        let buffer: [UInt8] = [9, 9, 0, 1, 2, 9]
        var reader = HeartbeatReader(buffer[2..<5])
        #expect(reader.remaining == 3)
        #expect(try reader.integer(UInt16.self, "x") == 1)
        #expect(throws: HeartbeatDecodingError.truncated(field: "y")) { try reader.integer(UInt16.self, "y") }
        #expect(Array(try reader.bytes(1, "z")) == [2])
    }

    @Test func addressesAndIDsRoundTrip() throws {
        let addresses = [
            NodeAddress.ipv4(127, 0, 0, 1, port: 7946),
            NodeAddress(host: .ipv6(high: 0x2001_0DB8_0000_0000, low: 1), port: 65535),
        ]
        let id = NodeID(high: 0x0123_4567_89AB_CDEF, low: 42)
        var out: [UInt8] = []
        for address in addresses { out.appendNodeAddress(address) }
        out.appendNodeID(id)
        #expect(Array(out[0..<7]) == [4, 127, 0, 0, 1, 0x1F, 0x0A])
        #expect(out.count == 7 + 19 + 16)
        var reader = PeerReader(out[...])
        #expect(try reader.address("a") == addresses[0])
        #expect(try reader.address("b") == addresses[1])
        #expect(try reader.nodeID("id") == id)
        #expect(reader.remaining == 0)
    }

    @Test func badOrTruncatedAddresses() {
        var family = HeartbeatReader([5, 1, 2, 3, 4, 0, 1][...])
        #expect(throws: HeartbeatDecodingError.badAddressFamily(5)) { try family.address("address") }
        var short = PeerReader([6, 1, 2, 3][...])
        #expect(throws: PeerDecodingError.truncated(field: "entry")) { try short.address("entry") }
    }

    @Test func namesAndServices() throws {
        var out: [UInt8] = []
        out.appendName("echo")
        out.appendName("echo")
        out.appendName("Bad")
        #expect(Array(out[0..<5]) == [4] + Array("echo".utf8))
        var reader = PeerReader(out[...])
        var cache: ServiceName?
        let first = try reader.service(cache: &cache)
        #expect(first.value == "echo" && cache == first)
        #expect(try reader.service(cache: &cache) == first)
        #expect(throws: PeerDecodingError.badService(ServiceName.Invalid.badCharacter("B").description)) {
            try reader.service(cache: &cache)
        }
        var notUTF8 = HeartbeatReader([2, 0xC3, 0x28][...])
        var none: ServiceName?
        #expect(throws: HeartbeatDecodingError.badService("not UTF-8")) { try notUTF8.service(cache: &none) }
        var cut = HeartbeatReader([5, 0x61][...])
        #expect(throws: HeartbeatDecodingError.truncated(field: "service")) { try cut.service(cache: &none) }
        var empty = HeartbeatReader([][...])
        #expect(throws: HeartbeatDecodingError.truncated(field: "service length")) { try empty.service(cache: &none) }
    }

    @Test func keys() throws {
        var out: [UInt8] = []
        out.appendName("job-1")
        var reader = PeerReader(out[...])
        #expect(try reader.key() == (try JobKey("job-1")))
        var bad = PeerReader([3, 0x61, 0x2F, 0x62][...])
        #expect(throws: PeerDecodingError.badKey("job key has a byte outside A-Z, a-z, 0-9, '.', '_', ':', '-'")) {
            try bad.key()
        }
        var empty = PeerReader([0][...])
        #expect(throws: PeerDecodingError.badKey("job key is empty")) { try empty.key() }
        var long = PeerReader([65] + [UInt8](repeating: 0x61, count: 65)[...])
        #expect(throws: PeerDecodingError.badKey(JobKey.Invalid.tooLong(65).description)) { try long.key() }
    }

    @Test func blobsAndTexts() throws {
        var out: [UInt8] = []
        out.appendBlob([1, 2, 3])
        out.appendText("héllo", maxBytes: 100)
        // Cut at the limit, before a continuation byte: "hé" is 3 bytes, so 2 keeps only "h".
        out.appendText("héllo", maxBytes: 2)
        #expect(out == [0, 0, 0, 3, 1, 2, 3, 0, 6] + Array("héllo".utf8) + [0, 1, 0x68])
        var reader = PeerReader(out[...])
        #expect(try reader.blob("blob") == [1, 2, 3])
        #expect(try reader.text("t", maxBytes: 100) == "héllo")
        #expect(try reader.text("t", maxBytes: 100) == "h")
        var tooLong = PeerReader([0, 5, 0x61, 0x61, 0x61, 0x61, 0x61][...])
        #expect(throws: PeerDecodingError.textTooLong(field: "reason", length: 5)) { try tooLong.text("reason", maxBytes: 4) }
        var notUTF8 = PeerReader([0, 2, 0xC3, 0x28][...])
        #expect(throws: PeerDecodingError.badText(field: "reason")) { try notUTF8.text("reason", maxBytes: 4) }
        var cut = PeerReader([0, 0, 1, 0, 1][...])
        #expect(throws: PeerDecodingError.truncated(field: "payload")) { try cut.blob("payload") }
    }
}
