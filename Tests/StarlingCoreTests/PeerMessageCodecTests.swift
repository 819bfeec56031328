import StarlingCore
import Testing
import StarlingTestSupport

private func service(_ text: String) -> ServiceName { try! ServiceName(text) }
private func key(_ text: String) -> JobKey { try! JobKey(text) }

private let maxService = service(String(repeating: "s", count: ServiceName.maxLength))
private let maxKey = key(String(repeating: "K", count: JobKey.maxLength))
private let ipv6 = NodeAddress(host: .ipv6(high: 0xFE80_0000_0000_0000, low: 0x0000_0000_0000_0001), port: 65_535)
private let ipv4 = NodeAddress.ipv4(10, 0, 0, 7, port: 7946)

private func ticket(_ payload: [UInt8], entry: NodeAddress = ipv4) -> JobTicket {
    JobTicket(service: service("resize"), key: key("job-1"), entry: entry, payload: payload)
}

/// One of each case with ordinary values, small enough to split at every byte.
private let samples: [PeerMessage] = [
    .hello(sender: NodeID(high: 0x0192_F3A4_5B6C_7D8E, low: 0x9F00_1122_3344_5566), address: ipv4),
    .forward(ticket([1, 2, 3])),
    .dispatch(epoch: 42, ticket: ticket([], entry: ipv6)),
    .result(epoch: 42, service: service("resize"), key: key("job-1"), outcome: .succeeded([0xFF, 0])),
    .result(epoch: 43, service: service("thumbs"), key: key("job-2"), outcome: .failed("exit status 3: été")),
    .refused(service: service("resize"), key: key("job-3"), code: .busy, message: "queue full"),
    .declined(epoch: 7, service: service("resize"), key: key("job-4"), reason: "stale epoch"),
    .running(epoch: 9, service: service("resize"), keys: [key("a"), key("b:c"), key("D.e_f-1")]),
    .lease(epoch: 9, service: service("resize"), shards: KeyShardSet(bits: 0x8000_0000_0000_0011)),
    .released(epoch: 9, service: service("resize"), holding: KeyShardSet(bits: 1), running: [key("a"), key("z-9")]),
    .spawn(service: service("resize"), reason: "backlog 9 per worker"),
    .retire(reason: "idle for 10000 ms"),
    .spawnRefused(service: service("resize"), reason: "no headroom (4 of 4 workers)"),
]

/// The error one frame with this body gives, or nil if it decodes.
private func reason(body: [UInt8]) -> String? {
    var decoder = PeerFrameDecoder()
    decoder.append(frame(body))
    do {
        _ = try decoder.next()
        return nil
    } catch {
        return error.reason
    }
}

private func frame(_ body: [UInt8]) -> [UInt8] { u32(UInt32(body.count)) + body }
private func body(_ message: PeerMessage) -> [UInt8] { Array(PeerMessageCodec.encode(message).dropFirst(4)) }
private func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
private func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
private func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
private func name(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }
private func text(_ bytes: [UInt8]) -> [UInt8] { u16(UInt16(bytes.count)) + bytes }

@Suite struct PeerMessageCodecTests {
    // MARK: - Round trips

    @Test(arguments: samples) func roundTripsEachCase(_ message: PeerMessage) throws {
        #expect(decode(PeerMessageCodec.encode(message)) == DecodedFrames(messages: [message]))
    }

    @Test func roundTripsEdgeValues() {
        let megabyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var messages: [PeerMessage] = [
            .hello(sender: NodeID(high: .max, low: .max), address: ipv6),
            .hello(sender: NodeID(high: 0, low: 0), address: .ipv4(0, 0, 0, 0, port: 0)),
            .forward(JobTicket(service: maxService, key: maxKey, entry: ipv6, payload: [])),
            .dispatch(epoch: .max, ticket: ticket(megabyte)),
            .dispatch(epoch: 0, ticket: JobTicket(service: service("a"), key: key("b"), entry: ipv4, payload: [0])),
            .result(epoch: .max, service: maxService, key: maxKey, outcome: .succeeded([])),
            .result(epoch: 1, service: maxService, key: maxKey, outcome: .succeeded(megabyte)),
            .result(epoch: 1, service: maxService, key: maxKey, outcome: .failed("")),
            .result(epoch: 1, service: maxService, key: maxKey,
                    outcome: .failed(String(repeating: "x", count: PeerMessageCodec.maxTextBytes))),
            .declined(epoch: 0, service: maxService, key: maxKey, reason: ""),
            .running(epoch: 3, service: maxService, keys: []),
            .running(epoch: 3, service: maxService,
                     keys: (0..<PeerMessageCodec.maxRunningKeys).map { key(String(repeating: "k", count: 54) + "-\($0)") }),
            .running(epoch: 3, service: maxService, keys: Array(repeating: maxKey, count: PeerMessageCodec.maxRunningKeys)),
            .lease(epoch: .max, service: maxService, shards: .all),
            .lease(epoch: 0, service: maxService, shards: .none),
            .released(epoch: .max, service: maxService, holding: .all,
                      running: Array(repeating: maxKey, count: PeerMessageCodec.maxRunningKeys)),
        ]
        for code in ClientErrorCode.allCases {
            messages.append(.refused(service: maxService, key: maxKey, code: code, message: code.defaultMessage))
            messages.append(.refused(service: service("s"), key: key("k"), code: code, message: ""))
        }
        for message in messages {
            let bytes = PeerMessageCodec.encode(message)
            #expect(bytes.count - 4 <= PeerFrameDecoder.defaultMaxFrameBytes)
            #expect(decode(bytes) == DecodedFrames(messages: [message]))
        }
        // All of them in one stream, cut into odd chunks.
        var stream: [UInt8] = []
        for message in messages { PeerMessageCodec.encode(message, into: &stream) }
        #expect(decode(stream, chunks: [65_537, 3, 1000]) == DecodedFrames(messages: messages))
    }

    @Test func batchedEncodingIsTheConcatenationOfFrames() {
        var batch: [UInt8] = [0xAA]
        for message in samples { PeerMessageCodec.encode(message, into: &batch) }
        #expect(batch == [0xAA] + samples.flatMap(PeerMessageCodec.encode))
    }

    /// The layout is a wire contract: a change here breaks mixed-version clusters.
    @Test func goldenBytes() {
        let hello = PeerMessage.hello(sender: NodeID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10),
                                      address: .ipv4(127, 0, 0, 1, port: 0x1F4A))
        #expect(PeerMessageCodec.encode(hello) == [0, 0, 0, 25, 1, PeerMessageCodec.version]
            + Array(1...16) + [4, 127, 0, 0, 1, 0x1F, 0x4A])
        let refused = PeerMessage.refused(service: service("ab"), key: key("k"), code: .unavailable, message: "no")
        #expect(PeerMessageCodec.encode(refused) == frame([5] + name("ab") + name("k") + [5] + text(Array("no".utf8))))
        let result = PeerMessage.result(epoch: 2, service: service("s"), key: key("k"), outcome: .failed("x"))
        #expect(PeerMessageCodec.encode(result) == frame([4] + u64(2) + name("s") + name("k") + [1] + text([0x78])))
        let running = PeerMessage.running(epoch: 1, service: service("s"), keys: [key("a"), key("bc")])
        #expect(PeerMessageCodec.encode(running) == frame([7] + u64(1) + name("s") + u16(2) + name("a") + name("bc")))
    }

    // MARK: - Texts

    @Test func longTextsAreCutAtAScalarBoundary() {
        let max = PeerMessageCodec.maxTextBytes
        let cases: [(sent: String, received: String)] = [
            (String(repeating: "a", count: max + 904), String(repeating: "a", count: max)),
            // "é" is two bytes: it would straddle the limit, so it goes.
            (String(repeating: "a", count: max - 1) + "é", String(repeating: "a", count: max - 1)),
            (String(repeating: "a", count: max - 2) + "😀", String(repeating: "a", count: max - 2)),
            (String(repeating: "a", count: max - 4) + "😀" + "b", String(repeating: "a", count: max - 4) + "😀"),
            (String(repeating: "é", count: max), String(repeating: "é", count: max / 2)),
        ]
        for (sent, received) in cases {
            let message = PeerMessage.declined(epoch: 1, service: service("s"), key: key("k"), reason: sent)
            let expected = PeerMessage.declined(epoch: 1, service: service("s"), key: key("k"), reason: received)
            #expect(decode(PeerMessageCodec.encode(message)) == DecodedFrames(messages: [expected]))
        }
    }

    // MARK: - Framing

    @Test func decodesTheSameAtEverySplitPoint() {
        let stream = samples.flatMap(PeerMessageCodec.encode)
        let expected = DecodedFrames(messages: samples)
        #expect(decode(stream) == expected)
        #expect(decode(stream, chunks: [1]) == expected, "byte at a time")
        for split in 0...stream.count {
            #expect(decode(stream, chunks: [split, Int.max]) == expected, "split at \(split)")
        }
    }

    @Test func everyPrefixOfAFrameWaitsForMore() throws {
        for message in samples {
            let bytes = PeerMessageCodec.encode(message)
            for length in 0..<bytes.count {
                var decoder = PeerFrameDecoder()
                decoder.append(bytes.prefix(length))
                #expect(try decoder.next() == nil)
                #expect(decoder.bufferedByteCount == length)
            }
        }
    }

    @Test func manyFramesThroughOneDecoderKeepTheBufferSmall() throws {
        var stream: [UInt8] = []
        var expected: [PeerMessage] = []
        for index in 0..<20_000 {
            let message = samples[index % samples.count]
            expected.append(message)
            PeerMessageCodec.encode(message, into: &stream)
        }
        // Within the bound whenever the decoder asks for more: less than one frame of 256 bytes.
        #expect(decode(stream, chunks: [4093], maxFrameBytes: 256) == DecodedFrames(messages: expected))
    }

    // MARK: - Errors

    @Test func oversizeFrameFailsFromItsLengthAlone() {
        var decoder = PeerFrameDecoder(maxFrameBytes: 100)
        decoder.append(u32(101))
        #expect(throws: PeerDecodingError.frameTooLarge(length: 101, limit: 100)) { try decoder.next() }
        #expect(decoder.isClosed)
        #expect(decoder.bufferedByteCount == 0)
        // The body that follows is never kept.
        decoder.append([UInt8](repeating: 0, count: 101))
        #expect(decoder.bufferedByteCount == 0)
        #expect(throws: PeerDecodingError.frameTooLarge(length: 101, limit: 100)) { try decoder.next() }

        // The largest length prefix does not overflow anything.
        var largest = PeerFrameDecoder()
        largest.append(u32(.max))
        #expect(throws: PeerDecodingError.frameTooLarge(length: Int(UInt32.max), limit: PeerFrameDecoder.defaultMaxFrameBytes)) {
            try largest.next()
        }
    }

    @Test func frameAtTheLimitIsAccepted() {
        let message = PeerMessage.forward(ticket(Array(repeating: 7, count: 200)))
        let bytes = PeerMessageCodec.encode(message)
        let bodyBytes = bytes.count - 4
        #expect(decode(bytes, maxFrameBytes: bodyBytes) == DecodedFrames(messages: [message]))
        #expect(decode(bytes, maxFrameBytes: bodyBytes - 1).error == .frameTooLarge(length: bodyBytes, limit: bodyBytes - 1))
    }

    @Test func messagesBeforeAnErrorAreDelivered() {
        let stream = PeerMessageCodec.encode(samples[0]) + frame([99]) + PeerMessageCodec.encode(samples[1])
        #expect(decode(stream) == DecodedFrames(messages: [samples[0]], error: .unknownType(99)))
        #expect(decode(stream, chunks: [1]) == DecodedFrames(messages: [samples[0]], error: .unknownType(99)))
    }

    @Test func everyTruncatedBodyIsTruncated() {
        for message in samples {
            let whole = body(message)
            for length in 0..<whole.count {
                #expect(reason(body: Array(whole.prefix(length))) == "truncated", "\(message) cut at \(length)")
            }
        }
    }

    @Test func rejectsWithTheRightReason() {
        let hello = body(samples[0])
        let id = Array(hello[2..<18])
        let tail = name("k") + [4, 127, 0, 0, 1, 0, 80] + u32(0)
        var versionTwo = hello
        versionTwo[1] = 2

        #expect(reason(body: []) == "truncated")
        #expect(reason(body: [0]) == "unknown_type")
        #expect(reason(body: [13]) == "unknown_type")
        #expect(reason(body: [255]) == "unknown_type")
        #expect(reason(body: versionTwo) == "unsupported_version")
        #expect(reason(body: [1, PeerMessageCodec.version] + id + [5, 1, 2, 3, 4, 0, 1]) == "bad_address")
        #expect(reason(body: [1, PeerMessageCodec.version] + id + [0, 1, 2, 3, 4, 0, 1]) == "bad_address")
        #expect(reason(body: [2] + name("Resize") + tail) == "bad_service")
        #expect(reason(body: [2] + [0] + tail) == "bad_service")
        #expect(reason(body: [2] + [2, 0xC3, 0x28] + tail) == "bad_service")
        #expect(reason(body: [2] + name(String(repeating: "s", count: 65)) + tail) == "bad_service")
        #expect(reason(body: [2] + name("s") + name("k k") + [4, 127, 0, 0, 1, 0, 80] + u32(0)) == "bad_key")
        #expect(reason(body: [2] + name("s") + [0] + [4, 127, 0, 0, 1, 0, 80] + u32(0)) == "bad_key")
        #expect(reason(body: [2] + name("s") + [1, 0xE9] + [4, 127, 0, 0, 1, 0, 80] + u32(0)) == "bad_key")
        #expect(reason(body: [2] + name("s") + name(String(repeating: "k", count: 65)) + [4, 127, 0, 0, 1, 0, 80] + u32(0))
            == "bad_key")
        #expect(reason(body: [2] + name("s") + tail) == nil, "the base of the lines above is valid")
        #expect(reason(body: [2] + name("s") + name("k") + [4, 127, 0, 0, 1, 0, 80] + u32(2) + [1]) == "truncated")
        #expect(reason(body: [2] + name("s") + name("k") + [4, 127, 0, 0, 1, 0, 80] + u32(.max)) == "truncated")
        for code: UInt8 in [0, 7, 255] {
            #expect(reason(body: [5] + name("s") + name("k") + [code] + text([])) == "bad_error_code")
        }
        #expect(reason(body: [5] + name("s") + name("k") + [4] + text([0xFF])) == "bad_text")
        #expect(reason(body: [5] + name("s") + name("k") + [4] + text([0xED, 0xA0, 0x80])) == "bad_text", "a surrogate")
        #expect(reason(body: [5] + name("s") + name("k") + [4] + text([0x61, 0xC3])) == "bad_text", "cut inside a character")
        let tooLong = [UInt8](repeating: 0x61, count: PeerMessageCodec.maxTextBytes + 1)
        #expect(reason(body: [6] + u64(1) + name("s") + name("k") + text(tooLong)) == "text_too_long")
        #expect(reason(body: [4] + u64(1) + name("s") + name("k") + [2] + u32(0)) == "bad_outcome")
        #expect(reason(body: [4] + u64(1) + name("s") + name("k") + [1] + text(tooLong)) == "text_too_long")
        #expect(reason(body: [7] + u64(1) + name("s") + u16(UInt16(PeerMessageCodec.maxRunningKeys + 1))) == "too_many_keys")
        #expect(reason(body: [7] + u64(1) + name("s") + u16(.max)) == "too_many_keys")
        #expect(reason(body: [12] + u64(1) + name("s") + u64(0) + u16(.max)) == "too_many_keys")
        #expect(reason(body: [11] + u64(1) + name("s") + [0, 0, 0]) == "truncated")
        #expect(reason(body: [7] + u64(1) + name("s") + u16(3) + name("a") + name("b")) == "truncated")
        for message in samples {
            #expect(reason(body: body(message) + [0]) == "trailing_bytes")
        }
    }

    @Test func errorsDescribeThemselves() {
        let errors: [PeerDecodingError] = [
            .frameTooLarge(length: 9, limit: 8), .truncated(field: "epoch"), .unknownType(9), .unsupportedVersion(2),
            .badAddressFamily(5), .badService("empty"), .badKey("empty"), .badErrorCode(0), .badOutcome(2),
            .badText(field: "reason"), .textTooLong(field: "reason", length: 5000), .tooManyKeys(9000), .trailingBytes(1),
        ]
        #expect(Set(errors.map(\.reason)).count == errors.count)
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(error.reason.allSatisfy { $0.isLowercase || $0 == "_" })
        }
    }

    // MARK: - Hostile input

    /// Random streams (pure noise, noise behind plausible headers, and damaged valid streams) never
    /// crash, decode the same in any chunking, and whatever decodes re-encodes to the input.
    @Test func randomBytesNeverCrash() {
        var rng = SeededRandom(seed: 0x5EED_FEED)
        let valid = samples.flatMap(PeerMessageCodec.encode)
        var reasons: [String: Int] = [:]
        var messages = 0
        for round in 0..<6000 {
            var input: [UInt8]
            switch round % 3 {
            case 0:
                input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                input = []
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    var noise = [UInt8.random(in: 0...9, using: &rng)]
                    noise += (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    input += frame(noise)
                }
            default:
                input = valid
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let index = Int.random(in: 0..<input.count, using: &rng)
                    input[index] = UInt8.random(in: 0...255, using: &rng)
                }
                if rng.chance(0.3) { input = Array(input.prefix(Int.random(in: 0...input.count, using: &rng))) }
            }
            let maxFrameBytes = rng.chance(0.2) ? Int.random(in: 1...64, using: &rng) : PeerFrameDecoder.defaultMaxFrameBytes
            let whole = decode(input, maxFrameBytes: maxFrameBytes)
            let chunks = (0..<3).map { _ in Int.random(in: 1...17, using: &rng) }
            #expect(decode(input, chunks: chunks, maxFrameBytes: maxFrameBytes) == whole, "round \(round)")
            #expect(input.starts(with: whole.messages.flatMap(PeerMessageCodec.encode)), "round \(round)")
            messages += whole.messages.count
            if let error = whole.error { reasons[error.reason, default: 0] += 1 }
        }
        // The generator reaches the decoded path and the deep checks, not only the first byte.
        #expect(messages > 1000)
        for expected in ["frame_too_large", "truncated", "unknown_type", "bad_service", "trailing_bytes"] {
            #expect(reasons[expected, default: 0] > 0, "no \(expected) in \(reasons)")
        }
    }
}
