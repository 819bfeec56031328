import Testing
import StarlingCore
import StarlingTestSupport

private typealias Decoded = ClientResponseDecoder.Decoded

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private func key(_ text: String) -> JobKey { try! JobKey(text) }
private func service(_ text: String) -> ServiceName { try! ServiceName(text) }

/// Feeds `input` in chunks of the given sizes (cycled), draining after each chunk and checking the
/// memory bound.
private func decode(
    _ input: [UInt8], chunks: [Int] = [Int.max], maxLine: Int = 1024, maxBody: Int = 1 << 20,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Decoded] {
    feed(input, to: ClientResponseDecoder(maxLineBytes: maxLine, maxBodyBytes: maxBody), chunks: chunks,
         bound: max(maxLine, maxBody) + 1, sourceLocation: sourceLocation)
}

/// Decodes whole, a byte at a time, in odd chunks, and split in two at every byte boundary; all
/// must agree.
private func decodeAllWays(_ input: [UInt8], maxLine: Int = 1024, maxBody: Int = 1 << 20,
                           sourceLocation: SourceLocation = #_sourceLocation) -> [Decoded] {
    feedAllWays(input, to: ClientResponseDecoder(maxLineBytes: maxLine, maxBodyBytes: maxBody),
                bound: max(maxLine, maxBody) + 1, everySplit: true, sourceLocation: sourceLocation)
}

@Suite struct ClientResponseDecoderTests {
    /// Every kind of answer, with binary bodies that contain line ends and NULs.
    static let sample: [ClientResponse] = [
        .pong,
        .welcome,
        .error(key: nil, code: .unauthorized, message: "token not accepted"),
        .ok(key: key("k1"), result: bytes("hello")),
        .ok(key: key("bin.ary:1-_"), result: [0, 13, 10, 255, 10, 13, 0x4F, 0x4B, 32]),
        .ok(key: key("empty"), result: []),
        .fail(key: key("k2"), text: bytes("exit status 3\r\nstderr: boom")),
        .error(key: key("k3"), code: .tooLarge, message: "payload of 2000000 bytes is over the limit"),
        .error(key: nil, code: .badRequest, message: "unknown command 'FOO'"),
        .error(key: key("k4"), code: .busy, message: "busy, try again later"),
        .error(key: key("k5"), code: .noService, message: "no such service"),
        .error(key: key("k6"), code: .unavailable, message: "no primary  during   handover"),
        .status(json: bytes("{\"members\":[]}")),
        .status(json: []),
        .shards(service: service("echo"), shards: .none),
        .shards(service: .agent, shards: .none),
        .shards(service: service("a.b_c-1"), shards: KeyShardSet(bits: 0x8000_0000_0000_0001)),
        .shards(service: service(String(repeating: "z", count: ServiceName.maxLength)), shards: .all),
        .pong,
    ]

    @Test func roundTripsEveryAnswerAtEverySplitPoint() {
        let wire = Self.sample.flatMap { $0.encode() }
        let decoded = decodeAllWays(wire)
        #expect(decoded == Self.sample.map { .response($0) })
    }

    @Test func roundTripsEachAnswerAlone() {
        for response in Self.sample {
            #expect(decodeAllWays(response.encode()) == [.response(response)])
        }
    }

    @Test func acceptsBareLineFeedsAndBlankLines() {
        let input = bytes("\r\nPONG\n\nOK k1 2\nhi\nERR - BUSY slow down\n")
        #expect(decodeAllWays(input) == [
            .response(.pong),
            .response(.ok(key: key("k1"), result: bytes("hi"))),
            .response(.error(key: nil, code: .busy, message: "slow down")),
        ])
    }

    @Test func errWithoutMessageGetsTheDefault() {
        #expect(decodeAllWays(bytes("ERR k1 NO_SERVICE\r\n")) == [
            .response(.error(key: key("k1"), code: .noService, message: ClientErrorCode.noService.defaultMessage)),
        ])
    }

    @Test func randomBinaryBodiesRoundTrip() {
        var random = SeededRandom(seed: 42)
        var responses: [ClientResponse] = []
        for index in 0..<40 {
            let body = (0..<Int.random(in: 0..<300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            responses.append(index.isMultiple(of: 2) ? .ok(key: key("r\(index)"), result: body)
                : .fail(key: key("r\(index)"), text: body))
        }
        let wire = responses.flatMap { $0.encode() }
        let expected = responses.map { Decoded.response($0) }
        #expect(decode(wire) == expected)
        #expect(decode(wire, chunks: [1]) == expected)
        for _ in 0..<20 {
            let chunks = (0..<5).map { _ in Int.random(in: 1...97, using: &random) }
            #expect(decode(wire, chunks: chunks) == expected)
        }
    }

    @Test func unknownLinesAreSkippedAndDecodingGoesOn() {
        let input = bytes("HELLO there\r\nPONG extra\r\nERR k1 NOPE what\r\nERR bad/key BUSY x\r\nERR\r\nPONG\r\n")
        let decoded = decodeAllWays(input)
        #expect(decoded.count == 6)
        #expect(decoded.last == .response(.pong))
        #expect(decoded.dropLast().allSatisfy { !$0.isFatal })
        guard case .error(.malformed(let key3, _)) = decoded[2] else {
            Issue.record("unknown code: \(decoded[2])")
            return
        }
        #expect(key3 == key("k1"))
    }

    @Test func badKeyWithReadableLengthSkipsTheBody() {
        let input = bytes("OK bad/key 5\r\nPONG!\r\nFAIL k1 1\r\nx\r\n")
        let decoded = decodeAllWays(input)
        #expect(decoded.count == 2)
        if case .error(.malformed(nil, _)) = decoded.first {} else { Issue.record("got \(decoded)") }
        #expect(decoded.last == .response(.fail(key: key("k1"), text: bytes("x"))))
    }

    @Test func bodyOverTheLimitIsSkippedWithoutBeingKept() {
        let big = [UInt8](repeating: 0x41, count: 5000)
        let input = bytes("OK big 5000\r\n") + big + bytes("\r\nSTATUS 6000\r\n") + [UInt8](repeating: 1, count: 6000)
            + bytes("\r\nOK small 3\r\nabc\r\n")
        let decoded = decodeAllWays(input, maxLine: 64, maxBody: 100)
        #expect(decoded == [
            .error(.bodyTooLarge(key: key("big"), length: 5000, limit: 100)),
            .error(.bodyTooLarge(key: nil, length: 6000, limit: 100)),
            .response(.ok(key: key("small"), result: bytes("abc"))),
        ])
    }

    @Test func unreadableLengthsAreFatal() {
        for line in ["OK k1 five", "FAIL k1 -1", "OK k1", "OK k1 2 3", "STATUS", "STATUS x", "OK k1 99999999999999999999999"] {
            let decoded = decodeAllWays(bytes(line + "\r\nPONG\r\n"))
            #expect(decoded.count == 1, "\(line)")
            guard case .error(let failure) = decoded.first, case .unframed = failure else {
                Issue.record("\(line): \(decoded)")
                continue
            }
            #expect(failure.isFatal)
        }
    }

    @Test func wrongLengthIsFatalAndInputAfterwardsIgnored() {
        var decoder = ClientResponseDecoder()
        decoder.append(bytes("OK k1 3\r\nhello\r\nPONG\r\n"))
        #expect(decoder.next() == .error(.unterminatedBody(key: key("k1"))))
        #expect(decoder.isClosed)
        decoder.append(bytes("PONG\r\n"))
        #expect(decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func lineWithoutEndIsBounded() {
        let decoded = decode([UInt8](repeating: 0x41, count: 5000), chunks: [1], maxLine: 100, maxBody: 10)
        #expect(decoded == [.error(.lineTooLong(limit: 100))])
        // Exactly at the limit, with either line end, is still fine.
        let line = bytes("ERR - BUSY ") + [UInt8](repeating: 0x61, count: 89)
        #expect(line.count == 100)
        #expect(decodeAllWays(line + bytes("\r\n"), maxLine: 100, maxBody: 10).count == 1)
        #expect(decodeAllWays(line + bytes("\n"), maxLine: 100, maxBody: 10).first?.isFatal == false)
        #expect(decode(line + bytes("a\r\n"), maxLine: 100, maxBody: 10) == [.error(.lineTooLong(limit: 100))])
    }

    /// Random bytes, and random mutations of valid answers: only items or typed errors, never a
    /// trap, and the buffer stays bounded (checked inside `decode`).
    @Test func arbitraryBytesNeverTrap() {
        var random = SeededRandom(seed: 7)
        let valid = Self.sample.flatMap { $0.encode() }
        for round in 0..<300 {
            var input: [UInt8]
            if round.isMultiple(of: 2) {
                input = (0..<Int.random(in: 0..<400, using: &random)).map { _ in
                    // Mostly protocol-looking bytes so the parser is reached.
                    let alphabet = bytes("OKFAILERRSTATUSPONG 0123456789k-\r\n")
                    return random.next() % 4 == 0 ? UInt8.random(in: 0...255, using: &random)
                        : alphabet[Int.random(in: 0..<alphabet.count, using: &random)]
                }
            } else {
                input = valid
                for _ in 0..<Int.random(in: 1...5, using: &random) {
                    input[Int.random(in: 0..<input.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            let chunks = [Int.random(in: 1...17, using: &random), Int.random(in: 1...300, using: &random)]
            let items = decode(input, chunks: chunks, maxLine: 64, maxBody: 128)
            // Nothing after a fatal error.
            if let fatal = items.firstIndex(where: \.isFatal) { #expect(fatal == items.count - 1) }
        }
    }

    @Test func failuresDescribeThemselves() {
        let failure = ClientResponseDecoder.Failure.bodyTooLarge(key: key("k9"), length: 10, limit: 5)
        #expect(failure.description.contains("k9"))
        #expect(!failure.isFatal)
        #expect(ClientResponseDecoder.Failure.lineTooLong(limit: 3).isFatal)
    }

    // MARK: - Answers to AUTH

    @Test func authAnswersToleranceSpacesAndLineFeeds() {
        let input = bytes("  WELCOME \nERR  -  UNAUTHORIZED  the first command must be AUTH <token>\nERR - UNAUTHORIZED\n")
        #expect(decodeAllWays(input) == [
            .response(.welcome),
            .response(.error(key: nil, code: .unauthorized, message: "the first command must be AUTH <token>")),
            .response(.error(key: nil, code: .unauthorized, message: ClientErrorCode.unauthorized.defaultMessage)),
        ])
    }

    @Test func welcomeWithArgumentsIsRecoverable() {
        let decoded = decodeAllWays(bytes("WELCOME back\r\nWELCOMED\r\nPONG\r\n"))
        #expect(decoded.count == 3)
        #expect(decoded[0] == .error(.malformed(key: nil, message: "WELCOME takes no arguments")))
        if case .error(.malformed) = decoded[1] {} else { Issue.record("\(decoded[1])") }
        #expect(decoded[2] == .response(.pong))
        #expect(decoded.allSatisfy { !$0.isFatal })
    }

    // MARK: - SHARDS (docs/PROTOCOL.md, "Key shards")

    @Test func shardsEncodesAsDocumented() {
        var set = KeyShardSet()
        for shard in [0, 5, 63] { set.insert(shard) }
        #expect(ClientResponse.shards(service: service("echo"), shards: set).encode()
            == bytes("SHARDS echo 8000000000000021\r\n"))
        #expect(ClientResponse.shards(service: .agent, shards: .none).encode() == bytes("SHARDS agent 0000000000000000\r\n"))
        #expect(ClientResponse.shards(service: service("echo"), shards: .all).summary == "SHARDS echo ffffffffffffffff")
        #expect(decodeAllWays(bytes("  SHARDS   echo  0000000000000010 \n")) == [
            .response(.shards(service: service("echo"), shards: KeyShardSet(bits: 0x10))),
        ])
    }

    @Test func shardsOfTheExamplesInProtocolMd() {
        #expect(KeyShard.of("k1".utf8) == 1)
        #expect(KeyShard.of("job-42".utf8) == 37)
    }

    /// Anything but exactly `SHARDS <service> <16 lowercase hex digits>` is one recoverable
    /// malformed line, and the answers after it still decode.
    @Test func malformedShardsAnswersAreSkipped() {
        let digits16 = "0123456789abcdef"
        let lines: [[UInt8]] = [
            "SHARDS", "SHARDS echo", "SHARDS \(digits16)", "SHARDS echo \(digits16) extra",
            "SHARDS Echo \(digits16)", "SHARDS .echo \(digits16)", "SHARDS \(String(repeating: "e", count: 65)) \(digits16)",
            "SHARDS echo 000000000000000", "SHARDS echo 00000000000000000", "SHARDS echo \(String(repeating: "0", count: 900))",
            "SHARDS echo 0123456789ABCDEF", "SHARDS echo 000000000000000g", "SHARDS echo -000000000000001",
            "SHARDS echo +000000000000001", "SHARDS echo 0x00000000000001", "SHARDS echo\t\(digits16)",
            "SHARDS echo ０１２３４５６７８９ａｂｃｄｅｆ", "SHARDS echo 01234567\u{0}9abcdef",
        ].map(bytes) + [
            bytes("SHARDS ") + [0xC3, 0x28] + bytes(" \(digits16)"),
            bytes("SHARDS echo ") + [0xFF] + bytes("123456789abcdef"),
        ]
        for line in lines {
            let decoded = decodeAllWays(line + bytes("\r\nPONG\r\n"))
            #expect(decoded.count == 2, "\(String(decoding: line, as: UTF8.self).debugDescription): \(decoded)")
            guard case .error(.malformed(nil, let message)) = decoded.first else {
                Issue.record("\(String(decoding: line, as: UTF8.self).debugDescription): \(decoded)")
                continue
            }
            #expect(message.contains("SHARDS"))
            #expect(decoded.last == .response(.pong))
        }
    }

    /// Random bytes in valid `SHARDS` answers: answers or typed errors, never a trap, nothing
    /// after a fatal error; both paths are reached.
    @Test func mutatedShardsAnswersNeverTrap() {
        var random = SeededRandom(seed: 11)
        let valid = bytes("SHARDS echo 00f0000000000a01\r\n")
        var (taken, refused) = (0, 0)
        for _ in 0..<2_000 {
            var input = valid
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let value = random.next() % 3 == 0 ? UInt8.random(in: 0...255, using: &random)
                    : bytes(" 0af9gG-\r\n")[Int.random(in: 0..<10, using: &random)]
                input[Int.random(in: 0..<input.count, using: &random)] = value
            }
            let items = decode(input, chunks: [Int.random(in: 1...40, using: &random)], maxLine: 64, maxBody: 16)
            if let fatal = items.firstIndex(where: \.isFatal) { #expect(fatal == items.count - 1) }
            for item in items {
                if case .response(.shards) = item { taken += 1 } else { refused += 1 }
            }
        }
        #expect(taken > 0 && refused > 0)
    }
}
