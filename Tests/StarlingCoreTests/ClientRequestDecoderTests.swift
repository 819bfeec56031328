import Testing
import StarlingCore
import StarlingTestSupport

private typealias Decoded = ClientRequestDecoder.Decoded

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private func key(_ text: String) -> JobKey { try! JobKey(text) }
private func service(_ text: String) -> ServiceName { try! ServiceName(text) }

/// Feeds `input` in chunks of the given sizes (cycled), draining after each chunk and checking the
/// memory bound.
private func decode(
    _ input: [UInt8], chunks: [Int] = [Int.max], maxLine: Int = 1024, maxPayload: Int = 1 << 20,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Decoded] {
    feed(input, to: ClientRequestDecoder(maxLineBytes: maxLine, maxPayloadBytes: maxPayload), chunks: chunks,
         bound: max(maxLine, maxPayload) + 1, sourceLocation: sourceLocation)
}

/// Decodes whole, a byte at a time and in odd chunks; all must agree.
private func decodeAllWays(_ input: [UInt8], maxLine: Int = 1024, maxPayload: Int = 1 << 20,
                           sourceLocation: SourceLocation = #_sourceLocation) -> [Decoded] {
    feedAllWays(input, to: ClientRequestDecoder(maxLineBytes: maxLine, maxPayloadBytes: maxPayload),
                bound: max(maxLine, maxPayload) + 1, everySplit: false, sourceLocation: sourceLocation)
}

@Suite struct ClientRequestDecoderTests {
    @Test func pingAndStatusWithBothLineEnds() {
        #expect(decodeAllWays(bytes("PING\r\nSTATUS\nPING\n")) == [
            .request(.ping), .request(.status), .request(.ping),
        ])
    }

    @Test func blankLinesAreIgnored() {
        #expect(decodeAllWays(bytes("\r\n\nPING\r\n\r\n")) == [.request(.ping)])
    }

    @Test func submitWithBinaryPayloadContainingLineEnds() {
        let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x0A, 0x0D, 0x50, 0x49, 0x4E, 0x47, 0x0D, 0x0A]
        let input = bytes("SUBMIT echo job-1 \(payload.count)\r\n") + payload + bytes("\r\n")
        #expect(decodeAllWays(input) == [
            .request(.submit(service: service("echo"), key: key("job-1"), payload: payload)),
        ])
    }

    @Test func submitWithEmptyPayloadAndBareNewlines() {
        #expect(decodeAllWays(bytes("SUBMIT sha256 a:b.c_d-1 0\n\nPING\n")) == [
            .request(.submit(service: service("sha256"), key: key("a:b.c_d-1"), payload: [])),
            .request(.ping),
        ])
    }

    @Test func pipelinedCommands() {
        var input: [UInt8] = []
        var expected: [Decoded] = []
        for i in 0..<50 {
            let payload = Array(repeating: UInt8(truncatingIfNeeded: i), count: i * 37)
            input += bytes("SUBMIT echo k\(i) \(payload.count)\r\n") + payload + bytes(i % 2 == 0 ? "\r\n" : "\n")
            expected.append(.request(.submit(service: service("echo"), key: key("k\(i)"), payload: payload)))
            if i % 10 == 0 {
                input += bytes("PING\r\n")
                expected.append(.request(.ping))
            }
        }
        input += bytes("STATUS\r\n")
        expected.append(.request(.status))
        #expect(decodeAllWays(input) == expected)
    }

    @Test func oversizedPayloadIsSkippedAndNextCommandDecoded() {
        let big = Array(repeating: UInt8(ascii: "\n"), count: 5000)
        let input = bytes("SUBMIT echo big 5000\r\n") + big + bytes("\r\nSUBMIT echo small 2\r\nhi\r\nPING\r\n")
        let out = decodeAllWays(input, maxPayload: 100)
        #expect(out == [
            .error(.tooLarge(key: key("big"), length: 5000, limit: 100)),
            .request(.submit(service: service("echo"), key: key("small"), payload: bytes("hi"))),
            .request(.ping),
        ])
        #expect(out[0].isFatal == false)
    }

    @Test func skippedPayloadIsNotBuffered() {
        var decoder = ClientRequestDecoder(maxPayloadBytes: 10)
        decoder.append(bytes("SUBMIT echo big 1000000\r\n"))
        #expect(decoder.next() == .error(.tooLarge(key: key("big"), length: 1_000_000, limit: 10)))
        let chunk = Array(repeating: UInt8(ascii: "x"), count: 100_000)
        for _ in 0..<10 {
            decoder.append(chunk)
            #expect(decoder.bufferedByteCount == 0)
            #expect(decoder.next() == nil)
        }
        decoder.append(bytes("\r\nPING\r\n"))
        #expect(decoder.next() == .request(.ping))
        #expect(decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func hugeDeclaredLengthIsTooLargeNotACrash() {
        var decoder = ClientRequestDecoder()
        decoder.append(bytes("SUBMIT echo k 18446744073709551615\r\n"))
        #expect(decoder.next() == .error(.tooLarge(key: key("k"), length: UInt64.max, limit: ServiceDefinition.maxPayloadBytesRange.upperBound)))
        decoder.append(bytes("SUBMIT echo k 18446744073709551616\r\nPING\r\n"))
        #expect(decoder.next() == nil, "still skipping the first payload")
    }

    @Test func payloadWithoutLineEndIsFatal() {
        let out = decodeAllWays(bytes("SUBMIT echo k1 3\r\nabcdPING\r\n"))
        #expect(out == [.error(.unterminatedPayload(key: key("k1")))])
        #expect(out[0].isFatal)
        #expect(decodeAllWays(bytes("SUBMIT echo k1 3\r\nabc\rxPING\r\n")) == [.error(.unterminatedPayload(key: key("k1")))])
        // Also after a skipped payload.
        #expect(decodeAllWays(bytes("SUBMIT echo k1 30\r\n" + String(repeating: "a", count: 31) + "\r\nPING\n"), maxPayload: 10) == [
            .error(.tooLarge(key: key("k1"), length: 30, limit: 10)),
            .error(.unterminatedPayload(key: key("k1"))),
        ])
    }

    @Test func badLinesRecover() {
        let input = bytes(
            "FOO bar\r\nping\r\nPING extra\r\nSUBMIT echo\r\nSUBMIT echo k1 -3\r\nSUBMIT echo k1 +3\r\n"
                + "SUBMIT echo k1 99999999999999999999999\r\n")
            + [0xC3, 0x28, 0x0D, 0x0A]  // invalid UTF-8
            + bytes("STATUS\r\n")
        let out = decodeAllWays(input)
        #expect(out == [
            .error(.badRequest(key: nil, message: "unknown command 'FOO'")),
            .error(.badRequest(key: nil, message: "unknown command 'ping'")),
            .error(.badRequest(key: nil, message: "PING takes no arguments")),
            .error(.badRequest(key: nil, message: "usage: SUBMIT <service> <key> <length>")),
            .error(.badRequest(key: key("k1"), message: "length '-3' is not a decimal number of bytes")),
            .error(.badRequest(key: key("k1"), message: "length '+3' is not a decimal number of bytes")),
            .error(.badRequest(key: key("k1"), message: "length '99999999999999999999999' is out of range")),
            .error(.badRequest(key: nil, message: "request line is not valid UTF-8")),
            .request(.status),
        ])
        #expect(out.allSatisfy { !$0.isFatal })
    }

    @Test func badServiceOrKeySkipsThePayload() {
        let input = bytes("SUBMIT Echo k1 5\r\nPING\n\r\nSUBMIT echo bad/key 5\r\nab\ncd\r\nSUBMIT echo ")
            + Array(repeating: UInt8(ascii: "k"), count: 65) + bytes(" 0\r\n\r\nPING\r\n")
        let out = decodeAllWays(input)
        #expect(out.count == 4)
        guard out.count == 4 else { return }
        #expect(out[0] == .error(.badRequest(key: key("k1"), message: ServiceName.Invalid.badCharacter("E").description)))
        #expect(out[1] == .error(.badRequest(key: nil, message: JobKey.Invalid.badCharacter("/").description)))
        #expect(out[2] == .error(.badRequest(key: nil, message: JobKey.Invalid.tooLong(65).description)))
        #expect(out[3] == .request(.ping))
    }

    @Test func overlongLineIsFatalAndNothingFollows() {
        let long = Array(repeating: UInt8(ascii: "A"), count: 40)
        let out = decodeAllWays(long + bytes("\r\nPING\r\n"), maxLine: 32)
        #expect(out == [.error(.lineTooLong(limit: 32))])
        #expect(out[0].isFatal)

        var decoder = ClientRequestDecoder(maxLineBytes: 32)
        decoder.append(long)  // no newline at all
        #expect(decoder.next() == .error(.lineTooLong(limit: 32)))
        #expect(decoder.isClosed)
        decoder.append(bytes("PING\r\n"))
        #expect(decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func lineOfExactlyTheLimitIsAccepted() {
        // "STATUS" padded with spaces to 32 bytes is a 32-byte line: allowed with either line end.
        let line = bytes("STATUS" + String(repeating: " ", count: 26))
        #expect(decodeAllWays(line + bytes("\r\n"), maxLine: 32) == [.request(.status)])
        #expect(decodeAllWays(line + bytes("\n"), maxLine: 32) == [.request(.status)])
        #expect(decodeAllWays(line + bytes(" \n"), maxLine: 32) == [.error(.lineTooLong(limit: 32))])
    }

    @Test func errorsAnswerWithErrLines() {
        #expect(ClientProtocolError.badRequest(key: nil, message: "unknown command 'FOO'").response.encode()
            == bytes("ERR - BAD_REQUEST unknown command 'FOO'\r\n"))
        #expect(ClientProtocolError.tooLarge(key: key("k1"), length: 5, limit: 4).response.encode()
            == bytes("ERR k1 TOO_LARGE payload of 5 bytes is over the limit of 4 bytes\r\n"))
        #expect(ClientProtocolError.lineTooLong(limit: 1024).isFatal)
    }

    @Test func responsesEncode() {
        #expect(ClientResponse.pong.encode() == bytes("PONG\r\n"))
        #expect(ClientResponse.status(json: bytes("{}")).encode() == bytes("STATUS 2\r\n{}\r\n"))
        #expect(ClientResponse.ok(key: key("j"), result: [0x0D, 0x0A, 0x00]).encode()
            == bytes("OK j 3\r\n") + [0x0D, 0x0A, 0x00] + bytes("\r\n"))
        #expect(ClientResponse.fail(key: key("j"), text: bytes("exit 1")).encode() == bytes("FAIL j 6\r\nexit 1\r\n"))
        #expect(ClientResponse.error(key: key("j"), code: .noService, message: "no\r\nworker\tfor 'x'\u{85}").encode()
            == bytes("ERR j NO_SERVICE no  worker for 'x'\r\n"))
        #expect(ClientResponse.error(key: nil, code: .busy, message: "\r\n").encode() == bytes("ERR - BUSY busy, try again later\r\n"))
        let long = ClientResponse.error(key: nil, code: .unavailable, message: String(repeating: "é", count: 1000)).encode()
        #expect(long.count <= ClientResponse.maxMessageBytes + 30)
        #expect(String(validating: long, as: UTF8.self) != nil)
        #expect(ClientErrorCode.allCases.map(\.rawValue) == ["NO_SERVICE", "TOO_LARGE", "BAD_REQUEST", "BUSY", "UNAVAILABLE", "UNAUTHORIZED"])
    }

    @Test func requestsEncodeAndDecodeBack() {
        let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF]
        #expect(ClientRequest.ping.encode() == bytes("PING\r\n"))
        #expect(ClientRequest.status.encode() == bytes("STATUS\r\n"))
        let submit = ClientRequest.submit(service: service("echo"), key: key("k-1"), payload: payload)
        #expect(submit.encode() == bytes("SUBMIT echo k-1 4\r\n") + payload + bytes("\r\n"))
        var batch: [UInt8] = []
        for request in [ClientRequest.ping, submit, .status, submit] { request.encode(into: &batch) }
        #expect(decodeAllWays(batch) == [.request(.ping), .request(submit), .request(.status), .request(submit)])
    }

    @Test func jobKeyValidation() {
        #expect((try? JobKey("A-Za-z0-9._:-")) != nil)
        #expect(throws: JobKey.Invalid.empty) { try JobKey("") }
        #expect(throws: JobKey.Invalid.tooLong(65)) { try JobKey(String(repeating: "a", count: 65)) }
        #expect((try? JobKey(String(repeating: "a", count: 64))) != nil)
        #expect(throws: JobKey.Invalid.badCharacter(" ")) { try JobKey("a b") }
        #expect(throws: JobKey.Invalid.badCharacter("é")) { try JobKey("café") }
        #expect(throws: JobKey.Invalid.badCharacter("\r\n")) { try JobKey("a\r\nb") }
    }

    /// Thousands of seeded random inputs, built from protocol-shaped fragments and raw noise, fed
    /// in random chunks: no trap, no hang, bounded buffering, and the same items however chunked.
    @Test func seededRandomInputs() {
        let fragments: [[UInt8]] = [
            bytes("PING"), bytes("STATUS"), bytes("SUBMIT"), bytes(" "), bytes("  "), bytes("\r\n"), bytes("\n"),
            bytes("\r"), bytes("echo"), bytes("k1"), bytes("0"), bytes("3"), bytes("17"), bytes("40"),
            bytes("99999999999999999999"), bytes("abc"), [0x00], [0xFF], [0xC3, 0x28], bytes("-"),
            bytes("SUBMIT echo k 5\r\n"), bytes("SUBMIT echo k 50\r\n"),
            bytes("AUTH"), bytes("AUTH tok\r\n"), [0x7F], bytes("\t"), bytes("SHARDS"), bytes("SHARDS\r\n"),
        ]
        let seeds: UInt64 = 3000
        var fatal = 0
        var requests = 0
        for seed in 0..<seeds {
            var rng = SeededRandom(seed: seed)
            var input: [UInt8] = []
            let parts = Int.random(in: 1...60, using: &rng)
            for _ in 0..<parts {
                if Bool.random(using: &rng) {
                    input += fragments.randomElement(using: &rng)!
                } else {
                    input += (0..<Int.random(in: 1...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            let maxLine = Int.random(in: 8...64, using: &rng)
            let maxPayload = Int.random(in: 0...30, using: &rng)
            let chunks = (0..<4).map { _ in Int.random(in: 1...20, using: &rng) }
            let whole = decode(input, maxLine: maxLine, maxPayload: maxPayload)
            let pieces = decode(input, chunks: chunks, maxLine: maxLine, maxPayload: maxPayload)
            #expect(whole == pieces, "seed \(seed)")
            // Every item consumes input, so there can be no more items than bytes.
            #expect(whole.count <= input.count, "seed \(seed)")
            // At most one fatal error, and it is the last item.
            if let index = whole.firstIndex(where: \.isFatal) {
                #expect(index == whole.count - 1, "seed \(seed)")
                fatal += 1
            }
            requests += whole.filter { if case .request = $0 { true } else { false } }.count
        }
        // The generator does reach both the fatal and the successful paths.
        #expect(fatal > 0)
        #expect(requests > 0)
    }

    // MARK: - AUTH (docs/PROTOCOL.md, "Authentication")

    private static let secret = "s3cr3t-T0ken_!~"

    @Test func authDecodesAndEncodesBack() throws {
        let token = try ClientToken(Self.secret)
        #expect(ClientRequest.auth(token: token).encode() == bytes("AUTH \(Self.secret)\r\n"))
        var batch: [UInt8] = []
        let submit = ClientRequest.submit(service: service("echo"), key: key("k1"), payload: bytes("hi"))
        for request in [ClientRequest.auth(token: token), submit, .ping] { request.encode(into: &batch) }
        #expect(decodeAllWays(batch) == [.request(.auth(token: token)), .request(submit), .request(.ping)])
        #expect(decodeAllWays(bytes("  AUTH   \(Self.secret)  \n")) == [.request(.auth(token: token))])
    }

    @Test func tokenBounds() throws {
        let longest = String(repeating: "x", count: ClientToken.maxBytes)
        #expect(decodeAllWays(bytes("AUTH \(longest)\r\n")) == [.request(.auth(token: try ClientToken(longest)))])
        #expect(throws: ClientToken.Invalid.tooLong(513)) { try ClientToken(longest + "x") }
        #expect(throws: ClientToken.Invalid.empty) { try ClientToken("") }
        #expect(throws: ClientToken.Invalid.badByte(position: 2)) { try ClientToken("a b") }
        #expect(throws: ClientToken.Invalid.badByte(position: 1)) { try ClientToken("\u{7F}") }
        #expect(throws: ClientToken.Invalid.badByte(position: 4)) { try ClientToken("abcé") }
        #expect((try? ClientToken("!~")) != nil)
    }

    @Test func malformedAuthIsItsOwnRecoverableErrorAndNeverShowsTheToken() {
        let over = String(repeating: "q", count: ClientToken.maxBytes + 1)
        let decoded = decodeAllWays(bytes("AUTH\r\nAUTH a b\r\nAUTH \(over)\r\nAUTH zq\u{1}zq\r\nPING\r\n"))
        #expect(decoded.count == 5)
        #expect(decoded.last == .request(.ping))
        for item in decoded.dropLast() {
            guard case .error(.malformedAuth(let message)) = item else {
                Issue.record("not malformedAuth: \(item)")
                continue
            }
            #expect(!item.isFatal)
            #expect(!message.contains("qqqq") && !message.contains("zq"), "\(message)")
        }
        if case .error(let error) = decoded[0] {
            #expect(error.reason == "client_bad_request")
            #expect(error.response == .error(key: nil, code: .badRequest, message: error.message))
        }
    }

    @Test func aTokenNeverPrints() throws {
        let token = try ClientToken(Self.secret)
        let request = ClientRequest.auth(token: token)
        for text in ["\(token)", String(describing: token), String(reflecting: token), "\(request)",
                     String(reflecting: request), "\([request])", "\(ClientRequestDecoder.Decoded.request(request))"] {
            #expect(!text.contains(Self.secret), "\(text)")
        }
        var dumped = ""
        dump(request, to: &dumped)
        #expect(!dumped.contains(Self.secret), "\(dumped)")
    }

    @Test func authenticationRequired() throws {
        let right = try ClientToken("right")
        let wrong = try ClientToken("wrong")
        let accepts: (ClientToken) -> Bool = { $0 == right }
        let ping = ClientRequestDecoder.Decoded.request(.ping)

        var gate = ClientAuthentication(required: true)
        #expect(!gate.isAuthenticated)
        guard case .refuse(.error(nil, .unauthorized, _), let detail) = gate.step(ping, accepts: accepts) else {
            Issue.record("PING before AUTH passed")
            return
        }
        #expect(detail == "PING before AUTH")
        if case .refuse(.error(nil, .unauthorized, _), _) = gate.step(.error(.badRequest(key: nil, message: "x")), accepts: accepts) {} else {
            Issue.record("bad input before AUTH passed")
        }
        if case .refuse(.error(nil, .unauthorized, let message), _) = gate.step(.error(.malformedAuth(message: "usage")), accepts: accepts) {
            #expect(message == "usage")
        } else {
            Issue.record("malformed AUTH passed")
        }
        if case .refuse(.error(nil, .unauthorized, let message), let detail) = gate.step(.request(.auth(token: wrong)), accepts: accepts) {
            #expect(!message.contains("wrong") && !detail.contains("wrong"))
        } else {
            Issue.record("wrong token passed")
        }
        #expect(!gate.isAuthenticated)

        #expect(gate.step(.request(.auth(token: right)), accepts: accepts) == .welcome)
        #expect(gate.isAuthenticated)
        #expect(gate.step(ping, accepts: accepts) == .handle(ping))
        let bad = ClientRequestDecoder.Decoded.error(.malformedAuth(message: "usage"))
        #expect(gate.step(bad, accepts: accepts) == .handle(bad), "once in, a malformed AUTH is a bad request")
        // AUTH again: checked again.
        #expect(gate.step(.request(.auth(token: right)), accepts: accepts) == .welcome)
        if case .refuse = gate.step(.request(.auth(token: wrong)), accepts: accepts) {} else {
            Issue.record("a wrong token after WELCOME passed")
        }
    }

    @Test func noTokensEverythingPassesAndAuthIsWelcome() throws {
        var gate = ClientAuthentication(required: false)
        #expect(gate.isAuthenticated)
        #expect(gate.step(.request(.ping), accepts: { _ in true }) == .handle(.request(.ping)))
        #expect(gate.step(.request(.auth(token: try ClientToken("any"))), accepts: { _ in true }) == .welcome)
        let bad = ClientRequestDecoder.Decoded.error(.malformedAuth(message: "usage"))
        #expect(gate.step(bad, accepts: { _ in true }) == .handle(bad))
    }

    @Test func authAnswersEncode() {
        #expect(ClientResponse.welcome.encode() == bytes("WELCOME\r\n"))
        #expect(ClientResponse.error(key: nil, code: .unauthorized, message: "no\r\nway").encode()
            == bytes("ERR - UNAUTHORIZED no  way\r\n"))
        #expect(ClientResponse.error(key: nil, code: .unauthorized, message: "").encode()
            == bytes("ERR - UNAUTHORIZED authentication required\r\n"))
    }

    // MARK: - SHARDS (docs/PROTOCOL.md, "Key shards")

    @Test func shardsDecodesAndEncodesBack() {
        #expect(ClientRequest.shards.encode() == bytes("SHARDS\r\n"))
        #expect(ClientRequest.shards.command == "SHARDS")
        let submit = ClientRequest.submit(service: service("echo"), key: key("k"), payload: bytes("x"))
        var batch: [UInt8] = []
        for request in [ClientRequest.shards, submit, .ping, .shards, .status] { request.encode(into: &batch) }
        #expect(decodeAllWays(batch) == [.request(.shards), .request(submit), .request(.ping), .request(.shards), .request(.status)])
        #expect(decodeAllWays(bytes("  SHARDS  \nSHARDS\r\n")) == [.request(.shards), .request(.shards)])
    }

    @Test func malformedShardsIsARecoverableBadRequest() {
        let lines = ["SHARDS echo", "SHARDS 0000000000000000", "SHARDS a b c d e", "shards", "Shards", "SHARDSX",
                     "SHARDS\t", "XSHARDS"]
        let input = lines.flatMap { bytes($0 + "\r\n") } + [0x53, 0x48, 0x41, 0x52, 0x44, 0x53, 0x20, 0xC3, 0x28, 0x0A]
            + bytes("PING\r\n")
        let out = decodeAllWays(input)
        #expect(out.count == lines.count + 2)
        #expect(out.last == .request(.ping))
        for item in out.dropLast() {
            guard case .error(.badRequest(nil, let message)) = item else {
                Issue.record("not a bad request: \(item)")
                continue
            }
            #expect(!message.isEmpty)
        }
        #expect(out[0] == .error(.badRequest(key: nil, message: "SHARDS takes no arguments")))
        #expect(out.allSatisfy { !$0.isFatal })
    }

    @Test func shardsNeedsAuthenticationLikePing() throws {
        var gate = ClientAuthentication(required: true)
        let accepts: (ClientToken) -> Bool = { $0.value == "right" }
        guard case .refuse(let answer, let detail) = gate.step(.request(.shards), accepts: accepts) else {
            Issue.record("SHARDS before AUTH passed")
            return
        }
        #expect(answer.encode().starts(with: bytes("ERR - UNAUTHORIZED ")))
        #expect(detail == "SHARDS before AUTH")
        #expect(gate.step(.request(.auth(token: try ClientToken("right"))), accepts: accepts) == .welcome)
        #expect(gate.step(.request(.shards), accepts: accepts) == .handle(.request(.shards)))
    }
}
