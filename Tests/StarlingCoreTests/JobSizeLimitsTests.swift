import StarlingCore
import Testing

/// Job sizes (`max_payload_bytes`, `max_result_bytes`): results checked where they are made,
/// payloads by the service's primary, and peer frame limits derived from the hard bounds.
@Suite struct JobSizeLimitsTests {
    let echo = try! ServiceName("echo")
    let key = try! JobKey("k1")
    let p1 = NodeAddress.ipv4(127, 0, 0, 1, port: 1), p2 = NodeAddress.ipv4(127, 0, 0, 1, port: 2)

    @Test func aResultOverTheLimitBecomesAFailureNamingSizeLimitAndKey() {
        let limits = JobSizeLimits(maxPayloadBytes: 4, maxResultBytes: 10)
        #expect(limits.checked(.succeeded(Array(repeating: 1, count: 10)), key: key) == .succeeded(Array(repeating: 1, count: 10)))
        #expect(limits.checked(.succeeded(Array(repeating: 1, count: 11)), key: key)
            == .failed("result of 11 bytes is over max_result_bytes (10) of job k1"))
        #expect(limits.checked(.failed(String(repeating: "x", count: 100)), key: key) == .failed(String(repeating: "x", count: 100)))
        #expect(limits.payloadRefusal(4, service: echo) == nil)
        #expect(limits.payloadRefusal(5, service: echo) == "payload of 5 bytes is over max_payload_bytes (4) of service echo")
    }

    /// p1 is the primary and the entry node; p2 the standby that runs the job. Returns both engines.
    private func cluster(sizes: JobSizeLimits) -> (primary: JobEngine, standby: JobEngine) {
        var config = JobEngine.Config()
        config.router.sizes = sizes
        var primary = JobEngine(address: p1, service: echo, slots: 1, config: config)
        var standby = JobEngine(address: p2, service: echo, slots: 1, config: config)
        let primaries: [ServiceName: JobView.Primary?] = [echo: .init(address: p1, epoch: 1)]
        let executors = [JobRouter.Executor(address: p2, slots: 1)]
        _ = primary.follow(JobView(primaryEpoch: 1, highestEpoch: 1, primaries: primaries, executors: executors), nowMs: 0)
        _ = standby.follow(JobView(primaryEpoch: nil, highestEpoch: 1, primaries: primaries, executors: executors), nowMs: 0)
        return (primary, standby)
    }

    @Test func theStandbyThatMadeAnOversizedResultSendsItsFailureNotTheBytes() throws {
        var (primary, standby) = cluster(sizes: JobSizeLimits(maxPayloadBytes: 100, maxResultBytes: 10))
        let forwarded = primary.submit(service: echo, key: key, payload: [1], client: 7, nowMs: 0)
        guard case .send(let dispatch, to: p2) = try #require(forwarded.first) else { Issue.record("\(forwarded)"); return }
        let run = standby.received(dispatch, from: p1, nowMs: 0)
        guard case .run = try #require(run.first) else { Issue.record("\(run)"); return }
        let finished = standby.finished(key, outcome: .succeeded(Array(repeating: 0x61, count: 11)), nowMs: 1)
        let failure = JobOutcome.failed("result of 11 bytes is over max_result_bytes (10) of job k1")
        #expect(finished == [.send(.result(epoch: 1, service: echo, key: key, outcome: failure), to: p1)])
        let answered = primary.received(.result(epoch: 1, service: echo, key: key, outcome: failure), from: p2, nowMs: 2)
        #expect(answered == [.answer(7, .fail(key: key, text: Array("result of 11 bytes is over max_result_bytes (10) of job k1".utf8)))])
    }

    @Test func aPayloadOverTheServiceLimitIsRefusedTooLargeByItsPrimary() {
        var (primary, standby) = cluster(sizes: JobSizeLimits(maxPayloadBytes: 4, maxResultBytes: 100))
        // Submitted at the standby: its forward reaches the primary, which refuses it.
        let forwarded = standby.submit(service: echo, key: key, payload: [1, 2, 3, 4, 5], client: 9, nowMs: 0)
        guard case .send(let forward, to: p1) = forwarded.first else { Issue.record("\(forwarded)"); return }
        let refused = primary.received(forward, from: p2, nowMs: 0)
        let message = "payload of 5 bytes is over max_payload_bytes (4) of service echo"
        #expect(refused == [.send(.refused(service: echo, key: key, code: .tooLarge, message: message), to: p2)])
        #expect(standby.received(refused[0].message!, from: p1, nowMs: 0) == [.answer(9, .error(key: key, code: .tooLarge, message: message))])
        #expect(primary.holdings.routed == 0)
    }
}

@Suite struct PeerFrameLimitsTests {
    private func header(_ length: Int, type: UInt8) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) } + [type]
    }

    @Test func aFrameMadeWithinTheHardBoundsIsWithinItsKindsLimit() throws {
        #expect(PeerFrameDecoder.defaultMaxFrameBytes == PeerFrameLimits.resultFrameBytes)
        // Every field but the payload or result at its longest fits the overhead...
        let service = try ServiceName(String(repeating: "s", count: ServiceName.maxLength))
        let key = try JobKey(String(repeating: "k", count: JobKey.maxLength))
        let entry = NodeAddress(host: .ipv6(high: .max, low: .max), port: .max)
        func body(_ message: PeerMessage) -> Int { PeerMessageCodec.encode(message).count - PeerMessageCodec.headerBytes }
        func ticket(_ payload: [UInt8]) -> JobTicket { JobTicket(service: service, key: key, entry: entry, payload: payload) }
        let longest = String(repeating: "é", count: PeerMessageCodec.maxTextBytes)
        for message: PeerMessage in [
            .forward(ticket([])), .dispatch(epoch: .max, ticket: ticket([])),
            .result(epoch: .max, service: service, key: key, outcome: .succeeded([])),
            .result(epoch: .max, service: service, key: key, outcome: .failed(longest)),
        ] {
            #expect(body(message) <= PeerFrameLimits.overheadBytes, "\(message)")
        }
        // ...and a payload or result adds exactly its own length.
        let payload = [UInt8](repeating: 7, count: 1000)
        #expect(body(.forward(ticket(payload))) == body(.forward(ticket([]))) + payload.count)
        #expect(body(.dispatch(epoch: 1, ticket: ticket(payload))) == body(.dispatch(epoch: 1, ticket: ticket([]))) + payload.count)
        let result = { (bytes: [UInt8]) in PeerMessage.result(epoch: 1, service: service, key: key, outcome: .succeeded(bytes)) }
        #expect(body(result(payload)) == body(result([])) + payload.count)
        // A full running list (the largest control frame) fits the control limit.
        let keys = try (0..<PeerMessageCodec.maxRunningKeys).map { try JobKey(String(repeating: "k", count: JobKey.maxLength - String($0).count) + String($0)) }
        #expect(body(.running(epoch: .max, service: service, keys: keys)) <= PeerFrameLimits.controlFrameBytes)
    }

    @Test func eachKindIsRefusedJustOverItsOwnLimit() throws {
        let kinds: [(type: UInt8, limit: Int)] = [
            (2, PeerFrameLimits.payloadFrameBytes), (3, PeerFrameLimits.payloadFrameBytes),
            (4, PeerFrameLimits.resultFrameBytes), (6, PeerFrameLimits.controlFrameBytes),
            (1, PeerFrameLimits.controlFrameBytes), (99, PeerFrameLimits.controlFrameBytes),
        ]
        for (type, limit) in kinds {
            var atLimit = PeerFrameDecoder()
            atLimit.append(header(limit, type: type))
            #expect(try atLimit.next() == nil, "type \(type): a frame at its kind's limit waits for its body")
            var over = PeerFrameDecoder()
            over.append(header(limit + 1, type: type))
            #expect(throws: PeerDecodingError.frameTooLarge(length: limit + 1, limit: limit)) { try over.next() }
            #expect(over.bufferedByteCount == 0)
        }
    }

    @Test func theSenderChecksAnEncodedFrameByTheDecodersNumbers() throws {
        let result = PeerMessage.result(epoch: 1, service: try ServiceName("s"), key: try JobKey("k"), outcome: .succeeded([1, 2, 3]))
        #expect(PeerFrameLimits.refusal(ofFrame: PeerMessageCodec.encode(result)[...]) == nil)
        for type: UInt8 in [1, 6, 99] {
            let limit = PeerFrameLimits.controlFrameBytes
            let atLimit = header(limit, type: type) + [UInt8](repeating: 0, count: limit - 1)
            #expect(PeerFrameLimits.refusal(ofFrame: atLimit[...]) == nil)
            #expect(PeerFrameLimits.refusal(ofFrame: (atLimit + [0])[...]) == .frameTooLarge(length: limit + 1, limit: limit))
        }
    }

    @Test func aTenMegabyteResultFrameDecodesInChunks() throws {
        let result = PeerMessage.result(
            epoch: 3, service: try ServiceName("big"), key: try JobKey("k"), outcome: .succeeded(Array(repeating: 0x61, count: 10_000_000)))
        // The frames after it come in the same read as its end: the decoder lets go of the large
        // buffer there, keeping only what follows.
        let after = PeerMessage.retire(reason: "after")
        let stream = PeerMessageCodec.encode(result) + PeerMessageCodec.encode(after) + PeerMessageCodec.encode(after)
        #expect(decode(stream, chunks: [65_536]) == DecodedFrames(messages: [result, after, after]))
        #expect(decode(stream, chunks: [10_000_040, 7]) == DecodedFrames(messages: [result, after, after]))
    }
}

extension JobDirective {
    /// The frame a `.send` carries.
    fileprivate var message: PeerMessage? {
        if case .send(let message, _) = self { message } else { nil }
    }
}
