import StarlingCore
import Testing
import StarlingTestSupport

@Suite struct HeartbeatCodecTests {
    static let sample = Heartbeat(
        sender: NodeID(high: 0x0192_F3A4_5B6C_7D8E, low: 0x9F00_1122_3344_5566),
        service: try! ServiceName("resize"), status: .toBecomePrimary, priority: -7, epoch: 42,
        workload: Workload(running: 3, capacity: 8, backlog: 11, jobTimeoutMs: 30_000),
        address: .ipv4(127, 0, 0, 1, port: 7946), flags: [.join], sequence: 9_001,
        gossip: [
            .init(id: NodeID(high: 1, low: 2), sequence: 5, address: .ipv4(127, 0, 0, 2, port: 1)),
            .init(id: NodeID(high: 3, low: 4), sequence: 6,
                  address: NodeAddress(host: .ipv6(high: 0, low: 1), port: 65_535)),
        ],
        authTag: [1, 2, 3])

    @Test func roundTripsEveryField() throws {
        let bytes = HeartbeatCodec.encode(Self.sample)
        #expect(try HeartbeatCodec.decode(bytes).get() == Self.sample)
    }

    /// The documented layout, byte for byte: the wire format does not change with the code.
    @Test func encodesTheDocumentedLayout() {
        func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
            (0..<MemoryLayout<T>.size).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        }
        var expected: [UInt8] = [0x53, 0x48, 3, Heartbeat.Flags.join.rawValue, MemberStatus.toBecomePrimary.rawValue, 0]
        expected += be(UInt32(bitPattern: -7)) + be(UInt64(0x0192_F3A4_5B6C_7D8E)) + be(UInt64(0x9F00_1122_3344_5566))
        expected += be(UInt64(9_001)) + be(UInt64(42)) + be(UInt32(3)) + be(UInt32(8)) + be(UInt32(11)) + be(UInt32(30_000))
        expected += [4, 127, 0, 0, 1] + be(UInt16(7946))
        expected += [6] + Array("resize".utf8)
        expected += [2]
        expected += be(UInt64(1)) + be(UInt64(2)) + be(UInt64(5)) + [0] + [4, 127, 0, 0, 2] + be(UInt16(1))
        expected += be(UInt64(3)) + be(UInt64(4)) + be(UInt64(6)) + [0] + [6] + be(UInt64(0)) + be(UInt64(1)) + be(UInt16(65_535))
        expected += [3, 1, 2, 3]
        #expect(HeartbeatCodec.encode(Self.sample) == expected)
    }

    /// A gossip entry with the member's state and flags, byte for byte (docs/PROTOCOL.md).
    @Test func encodesAStatefulGossipEntryAsDocumented() throws {
        func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
            (0..<MemoryLayout<T>.size).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        }
        var heartbeat = Self.sample
        heartbeat.authTag = []
        heartbeat.gossip = [.init(
            id: NodeID(high: 7, low: 8), sequence: 77, address: .ipv4(10, 0, 0, 9, port: 80), flags: [.draining],
            state: .init(service: try ServiceName("echo"), status: .primary, priority: 2, epoch: 5,
                         workload: Workload(running: 1, capacity: 4, backlog: 6, jobTimeoutMs: 900)))]
        let bytes = HeartbeatCodec.encode(heartbeat)
        var entry = be(UInt64(7)) + be(UInt64(8)) + be(UInt64(77)) + [0x82] + [4, 10, 0, 0, 9] + be(UInt16(80))
        entry += [MemberStatus.primary.rawValue] + be(UInt32(2)) + be(UInt64(5))
        entry += be(UInt32(1)) + be(UInt32(4)) + be(UInt32(6)) + be(UInt32(900)) + [4] + Array("echo".utf8)
        #expect(Array(bytes.suffix(entry.count + 1)) == entry + [0])
        #expect(try HeartbeatCodec.decode(bytes).get() == heartbeat)
        let dead = Heartbeat.Gossip(id: NodeID(high: 9, low: 9), sequence: 3, address: .ipv4(1, 2, 3, 4, port: 5), flags: .dead)
        heartbeat.gossip.append(dead)
        #expect(try HeartbeatCodec.decode(HeartbeatCodec.encode(heartbeat)).get().gossip.last == dead)
    }

    /// The largest heartbeat a process builds fits the datagram limit: it fills gossip by
    /// `gossipBytes` within what `headerBytes` leaves, and both say exactly what `encode` writes.
    @Test func largestHeartbeatFitsTheDatagramLimit() throws {
        var heartbeat = Self.sample
        heartbeat.service = try ServiceName(String(repeating: "s", count: ServiceName.maxLength))
        heartbeat.address = NodeAddress(host: .ipv6(high: .max, low: .max), port: 1)
        heartbeat.authTag = Array(repeating: 0xAB, count: HeartbeatCodec.maxAuthTagBytes)
        let state = Heartbeat.Gossip.State(
            service: heartbeat.service, status: .primary, priority: .min, epoch: .max,
            workload: Workload(running: .max, capacity: .max, backlog: .max, jobTimeoutMs: .max))
        var left = HeartbeatCodec.maxDatagramBytes - HeartbeatCodec.headerBytes(heartbeat)
        heartbeat.gossip = []
        while heartbeat.gossip.count < HeartbeatCodec.maxGossipEntries {
            let entry = Heartbeat.Gossip(
                id: NodeID(high: UInt64(heartbeat.gossip.count), low: 0), sequence: .max,
                address: NodeAddress(host: .ipv6(high: .max, low: .max), port: 1),
                flags: .known.subtracting(.suspect), state: state)
            guard HeartbeatCodec.gossipBytes(entry) <= left else { break }
            left -= HeartbeatCodec.gossipBytes(entry)
            heartbeat.gossip.append(entry)
        }
        #expect(heartbeat.gossip.count >= 8, "the worst case still carries a useful window")
        let bytes = HeartbeatCodec.encode(heartbeat)
        #expect(bytes.count == HeartbeatCodec.encodedSize(heartbeat))
        #expect(bytes.count <= HeartbeatCodec.maxDatagramBytes)
        #expect(try HeartbeatCodec.decode(bytes).get() == heartbeat)
    }

    @Test func everyTruncationIsATypedError() {
        let bytes = HeartbeatCodec.encode(Self.sample)
        for length in 0..<bytes.count {
            guard case .failure(let error) = HeartbeatCodec.decode(bytes.prefix(length)) else {
                Issue.record("a \(length)-byte prefix decoded")
                continue
            }
            #expect(length < 2 || error.reason == "truncated")
        }
    }

    @Test func rejectsWithTheRightReason() {
        let good = HeartbeatCodec.encode(Self.sample)
        func reason(_ bytes: [UInt8]) -> String? {
            if case .failure(let error) = HeartbeatCodec.decode(bytes) { return error.reason }
            return nil
        }
        func reason(setting index: Int, to value: UInt8) -> String? {
            var bytes = good
            bytes[index] = value
            return reason(bytes)
        }
        #expect(reason(setting: 0, to: 0) == "bad_magic")
        #expect(reason(setting: 2, to: 1) == "unsupported_version")
        #expect(reason(setting: 4, to: 9) == "bad_status")
        #expect(reason(good + [0]) == "trailing_bytes")
        #expect(reason(good + Array(repeating: 0, count: HeartbeatCodec.maxDatagramBytes)) == "oversized")
        // The address family byte follows the fixed header (58 bytes).
        #expect(reason(setting: 58, to: 5) == "bad_address")
        // The service name starts after the IPv4 address (1 + 4 + 2 bytes) and its length byte.
        #expect(reason(setting: 66, to: UInt8(ascii: "R")) == "bad_service")
    }

    /// An indirect probe request (docs/HANDBOOK.md, "indirect probe"; docs/PROTOCOL.md): a gossip
    /// entry flagged `suspect` (4) round-trips; a datagram asking about more members than
    /// `maxSuspectEntries`, which would make its receiver probe each, is rejected with its reason.
    @Test func suspectEntriesRoundTripAndAreBounded() throws {
        func suspect(_ n: UInt64) -> Heartbeat.Gossip {
            Heartbeat.Gossip(id: NodeID(high: 5, low: n), sequence: n, address: .ipv4(10, 0, 0, UInt8(n), port: 7946), flags: .suspect)
        }
        var heartbeat = Self.sample
        heartbeat.flags = [.probe]
        heartbeat.gossip = (1...UInt64(HeartbeatCodec.maxSuspectEntries)).map(suspect) + Self.sample.gossip
        let bytes = HeartbeatCodec.encode(heartbeat)
        #expect(bytes[2 + 1 + 1 + 1 + 1 + 4 + 16 + 8 + 8 + 16 + 7 + 1 + 6 + 1 + 16 + 8] == Heartbeat.Gossip.Flags.suspect.rawValue)
        #expect(try HeartbeatCodec.decode(bytes).get() == heartbeat)
        // One more suspect entry: the flag byte of the first plain entry set to 4.
        var hostile = bytes
        let plainFlags = 2 + 1 + 1 + 1 + 1 + 4 + 16 + 8 + 8 + 16 + 7 + 1 + 6 + 1
            + HeartbeatCodec.maxSuspectEntries * (16 + 8 + 1 + 7) + 16 + 8
        #expect(hostile[plainFlags] == 0)
        hostile[plainFlags] = Heartbeat.Gossip.Flags.suspect.rawValue
        guard case .failure(let error) = HeartbeatCodec.decode(hostile) else {
            Issue.record("a third suspect entry was accepted")
            return
        }
        #expect(error.reason == "too_many_suspect_entries")
        #expect(error == .tooManySuspectEntries(HeartbeatCodec.maxSuspectEntries + 1))
    }

    @Test func unknownFlagBitsAreIgnored() throws {
        var bytes = HeartbeatCodec.encode(Self.sample)
        bytes[3] |= 0x80
        #expect(try HeartbeatCodec.decode(bytes).get().flags == [.join])
    }

    @Test func randomBytesNeverCrash() {
        var rng = SeededRandom(seed: 7)
        let good = HeartbeatCodec.encode(Self.sample)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...1_500, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                // Mutations of a valid heartbeat reach deeper into the decoder than pure noise.
                bytes = good
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            if case .success(let heartbeat) = HeartbeatCodec.decode(bytes) {
                decoded += 1
                #expect(HeartbeatCodec.encode(heartbeat).count == bytes.count)
            }
        }
        #expect(decoded < 20_000)
    }
}
